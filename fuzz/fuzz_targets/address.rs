//! Fuzzes the poetry client's address parsing: no input may panic, and what parses
//! must print back to something that parses to the same address.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(address) = poetry_client::parse_address(text) {
        let again =
            poetry_client::parse_address(&address.to_string()).expect("a printed address parses");
        assert_eq!(again, address);
    }
});
