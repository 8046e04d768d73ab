//! The raw-payload archive's inflate (services/common/payload_archive.py).
//!
//! The archive hashes and compresses the uncompressed bytes of every event the fetcher receives.
//! Python's zlib (the system's, with its table-driven CRC) took about 0.5 ms for a 350 KB event;
//! the core's gzip reader (flate2 with zlib-rs, `raceday_core::inflate`) takes about half that, and
//! runs with the GIL released so that the archive's worker thread does not hold up the event loop.

use std::borrow::Cow;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use raceday_core::inflate::{inflate, InflateError};

use crate::payload_err;

/// The body without its content encoding ("" or "identity": as is; "gzip", one or more members),
/// refusing more than 64 MiB. `PayloadDecodeError` for a body that does not inflate, `ValueError`
/// for another encoding.
#[pyfunction]
#[pyo3(signature = (payload, encoding = ""))]
pub(crate) fn inflate_payload<'py>(
    py: Python<'py>,
    payload: &[u8],
    encoding: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let body = py.allow_threads(|| inflate(payload, encoding).map(Cow::into_owned)).map_err(|e| match e {
        InflateError::Payload(e) => payload_err(py, e),
        InflateError::Encoding(message) => PyValueError::new_err(message),
    })?;
    Ok(PyBytes::new(py, &body))
}
