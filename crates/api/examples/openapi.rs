//! Prints the OpenAPI document (`cargo run -p animoca-api --example openapi > openapi.json`).
fn main() {
    println!("{:#}", animoca_api::openapi::document());
}
