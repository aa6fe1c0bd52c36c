//! Converts `openapi.yaml`, the one source of the API contract, to the JSON the worker serves
//! at `GET /openapi.json`.

use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=openapi.yaml");
    let yaml = fs::read_to_string("openapi.yaml").expect("openapi.yaml is readable");
    let document: serde_json::Value =
        serde_norway::from_str(&yaml).expect("openapi.yaml is valid YAML");
    let json = serde_json::to_string(&document).expect("the document serialises");
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("openapi.json");
    fs::write(out, json).expect("OUT_DIR is writable");
}
