#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let check = eniplan_fuzz::target("trace").expect("a known target");
    check(data);
});
