"""A simulated NZ TAB API built from recorded responses."""
