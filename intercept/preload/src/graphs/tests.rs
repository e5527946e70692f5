use super::*;

#[test]
fn insert_lookup_remove() {
    let a = 0x7000_1230usize;
    let b = a + 16;
    insert(a, 10);
    insert(b, 20);
    assert_eq!(lookup(a), Some(10));
    assert_eq!(lookup(b), Some(20));
    assert_eq!(units(a + 32), UNKNOWN_GRAPH_UNITS);
    remove(a);
    assert_eq!(lookup(a), None);
    assert_eq!(lookup(b), Some(20), "a tombstone does not hide later keys");
    insert(a, 30);
    assert_eq!(lookup(a), Some(30));
}

#[test]
fn colliding_keys_probe() {
    // Many keys at once: all retrievable.
    let base = 0x5500_0000usize;
    for i in 0..500 {
        insert(base + i * 4096 * 16, i as u64 + 1);
    }
    for i in 0..500 {
        assert_eq!(lookup(base + i * 4096 * 16), Some(i as u64 + 1));
    }
}
