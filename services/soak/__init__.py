"""`raceday soak`: a race day at high simulated speed under a schedule of faults, then an audit."""
