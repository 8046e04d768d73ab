//! Generates the Rust types of the gRPC messages from proto/raceday/v1 (one source of truth
//! for the wire format, shared with the Python stubs of services/common/proto).

use std::path::PathBuf;

const PROTOS: [&str; 3] =
    ["raceday/v1/race.proto", "raceday/v1/transformer.proto", "raceday/v1/writer.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let descriptors = protox::compile(PROTOS, [&root])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
