//! Generates the `forwarding.v1` protobuf types with prost.
//!
//! The .proto is compiled by protox (a pure-Rust protobuf compiler), so a fresh machine needs no
//! system `protoc` to build switchyard.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/forwarding/v1/forwarding.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["proto"])?;
    prost_build::Config::new()
        // Request and response bodies are shared, not copied, between the HTTP side and the codec.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
