//! Generates the gRPC example's code from `proto/demo.proto` with protox, a protobuf
//! compiler in Rust, so building needs no `protoc` on the machine.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/demo.proto");
    let fds = protox::compile(["demo.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // For the reflection service, which grpcurl and other clients discover the API with.
    std::fs::write(out.join("demo_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
