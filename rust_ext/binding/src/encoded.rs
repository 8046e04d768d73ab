//! The transformer's hot path: a serialised `TransformRequest` in, a serialised
//! `TransformResponse` out (see `raceday_core::wire::transform`); no Python object is built.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use raceday_core::wire::transform::{transform_request, RequestError};

use crate::payload_err;

/// Transform one serialised `TransformRequest` (GIL released); the serialised `TransformResponse`.
///
/// `nz_date(start_time_ms)` gives the NZ date of a race whose payload has no valid
/// `race_date_nz`; it is called (with the GIL) only then.
#[pyfunction]
pub fn transform_encoded<'py>(
    py: Python<'py>,
    request: &[u8],
    nz_date: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let nz_date = nz_date.unbind();
    let answer = py.allow_threads(|| {
        transform_request(request, |start_ms| {
            Python::with_gil(|py| {
                nz_date
                    .call1(py, (start_ms,))
                    .and_then(|date| date.extract::<String>(py))
                    .map_err(|e| format!("nz_date({start_ms}) failed: {e}"))
            })
        })
    });
    match answer {
        Ok(bytes) => Ok(PyBytes::new(py, &bytes)),
        Err(RequestError::Payload(e)) => Err(payload_err(py, e)),
        Err(RequestError::Invalid(message)) => Err(PyValueError::new_err(message)),
    }
}
