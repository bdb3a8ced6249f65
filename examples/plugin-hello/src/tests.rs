//! The `hello` handler called as the host calls it, in a plain `cargo
//! test`: no .so is built or loaded.

use sextant_plugin_api::prelude::*;
use sextant_plugin_api::testing::Plugin;

fn plugin() -> Plugin {
    sextant_plugin_api::test_plugin!()
}

#[test]
fn hello_greets_by_name() {
    let hello = plugin().handler("hello", json!({"name": "ops"})).unwrap();
    assert_eq!(hello.run().unwrap(), json!({"greeting": "Hello, ops!"}));
}

#[test]
fn hello_refuses_what_its_schema_refuses() {
    for params in [
        json!({}),
        json!({"name": ""}),
        json!({"name": 3}),
        json!({"name": "ops", "shout": true}),
    ] {
        let e = plugin().handler("hello", params.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::INVALID_INPUT, "{params}: {e}");
    }
}

#[test]
fn hello_is_idempotent_and_neither_revertible_nor_abortable() {
    let plugin = plugin();
    let entry = plugin.handler_entry("hello").unwrap();
    assert!(entry.idempotent && !entry.revertible && !entry.abortable);
    let hello = plugin.handler("hello", json!({"name": "ops"})).unwrap();
    assert_eq!(hello.revert().unwrap_err().kind(), ErrorKind::UNSUPPORTED);
    assert_eq!(hello.abort().unwrap_err().kind(), ErrorKind::UNSUPPORTED);
}
