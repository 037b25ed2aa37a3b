#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let check = eniplan_fuzz::target("cni_prev_result").expect("a known target");
    check(data);
});
