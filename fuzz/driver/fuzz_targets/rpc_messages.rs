#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let check = eniplan_fuzz::target("rpc_messages").expect("a known target");
    check(data);
});
