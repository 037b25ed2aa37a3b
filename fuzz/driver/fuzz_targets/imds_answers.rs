#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let check = eniplan_fuzz::target("imds_answers").expect("a known target");
    check(data);
});
