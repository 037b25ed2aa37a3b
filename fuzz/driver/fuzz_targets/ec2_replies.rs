#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let check = eniplan_fuzz::target("ec2_replies").expect("a known target");
    check(data);
});
