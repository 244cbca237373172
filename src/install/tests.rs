//! install tests: when the installed binary counts as the same.

use super::*;

#[test]
fn files_of_equal_size_but_other_bytes_differ() {
    let dir = std::env::temp_dir().join(format!("router-install-unit-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    let big = vec![7u8; CHUNK * 2 + 5];
    let mut other = big.clone();
    other[CHUNK + 3] = 8;
    fs::write(&a, &big).unwrap();
    fs::write(&b, &other).unwrap();
    fs::write(&c, &big).unwrap();
    assert!(!same_contents(&a, &b).unwrap());
    assert!(same_contents(&a, &c).unwrap());
    let _ = fs::remove_dir_all(&dir);
}
