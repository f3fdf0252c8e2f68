//! How a plan is cut into transactions, and which owners an offboarding touches.

use super::*;

#[test]
fn units_fill_the_first_transactions_room_then_whole_transactions() {
    // 50 bundles of 4 actions behind a head that left 90 actions free: 22 ride with the head,
    // 25 + the last 3 follow in transactions of at most 100.
    let sizes = vec![4; 50];
    let cuts = cut(&sizes, 90);
    assert_eq!(cuts, vec![22, 25, 3]);
    assert_eq!(cuts.iter().sum::<usize>(), 50, "every unit placed once");
}

#[test]
fn a_unit_is_never_split_and_no_transaction_goes_over_the_limit() {
    let sizes = vec![2, 4, 2, 4, 4, 2, 4, 2, 2, 4, 4, 4, 2, 2, 4, 4, 4, 2, 2, 4, 2, 4, 4, 4, 2, 2, 4, 4, 4, 2];
    for room in [0, 1, 3, 50, 97, 100] {
        let cuts = cut(&sizes, room);
        let mut start = 0;
        for (i, count) in cuts.iter().enumerate() {
            let used: usize = sizes[start..start + count].iter().sum();
            let limit = if i == 0 { room } else { MAX_TRANSACTION_ITEMS };
            assert!(used <= limit, "transaction {i} holds {used} actions (room {limit}, first room {room})");
            assert!(i == 0 || *count > 0, "no empty transaction after the first");
            start += count;
        }
        assert_eq!(start, sizes.len());
    }
}

#[test]
fn no_room_beside_the_head_sends_every_unit_after_it() {
    assert_eq!(cut(&[2, 2], 0), vec![0, 2]);
    assert_eq!(cut(&[], 0), vec![0], "nothing to place: the head alone");
}

#[test]
fn a_unit_larger_than_a_transaction_goes_alone_instead_of_looping() {
    assert_eq!(cut(&[1, 150, 1], 100), vec![1, 1, 1]);
}

#[test]
fn member_rows_count_two_actions_and_other_writes_one() {
    let member = Write::Member { iid: "i".into(), group_id: "g".into(), user_id: "u".into(), display: None };
    let gone = Write::NotMember { iid: "i".into(), group_id: "g".into(), user_id: "u".into() };
    let count = Write::RequestCount { iid: "i".into(), request_id: "r".into(), jobs: 3, drift: false };
    assert_eq!(actions_in(&[member, gone, count]), 5);
}

fn owner(id: &str, integrations: &[&str]) -> OwnerRecord {
    OwnerRecord::new(id, "Owner", integrations.iter().map(|i| i.to_string()).collect(), format!("hash-{id}"), "t")
}

#[test]
fn an_integration_is_taken_from_each_owner_reaching_it_as_read() {
    let owners = [owner("o1", &["i1", "i2"]), owner("o2", &["i2"]), owner("o3", &["i1"])];
    let writes = owners_drop("i1", &owners);
    let dropped: Vec<(&str, &str, &[String])> = writes
        .iter()
        .map(|w| match w {
            Write::OwnerDrop { owner_id, token_hash, read, .. } => (owner_id.as_str(), token_hash.as_str(), &read[..]),
            other => panic!("unexpected write {other:?}"),
        })
        .collect();
    assert_eq!(dropped.len(), 2, "o2 does not reach i1");
    assert_eq!(dropped[0].0, "o1");
    assert_eq!(dropped[0].1, "hash-o1", "conditioned on the token as read");
    assert_eq!(dropped[0].2, ["i1".to_string(), "i2".to_string()], "conditioned on the list as read");
    assert_eq!(dropped[1].0, "o3");
}
