"""A simulated NZ TAB API built from recorded responses (spec nztab-api §10).

- `raceday tabsim ...` (cli.py) serves it; `services.tabsim.server.run_tabsim` runs it
  in-process on a free port and `start_tabsim_process` as a child process.
- scenario.py lays out the day, model.py evaluates a race at an instant, event.py and
  meetings.py render the upstream shapes, faults.py and admin.py are the test knobs.
"""
