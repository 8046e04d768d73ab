//! Thin PyO3 binding of `raceday_core`: conversion at the edges, no math here.

use pyo3::prelude::*;

/// Version of the Rust money-flow core.
#[pyfunction]
fn version() -> &'static str {
    raceday_core::version()
}

#[pymodule]
fn _money_flow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
