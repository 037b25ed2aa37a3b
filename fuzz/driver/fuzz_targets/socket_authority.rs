#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let check = eniplan_fuzz::target("socket_authority").expect("a known target");
    check(data);
});
