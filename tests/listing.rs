//! Listings stay bounded whatever the integration holds (docs/contract.md "Limits"): a sorted
//! listing keeps sort keys, never resources, for any `startIndex`; a `/Groups` page leaves out
//! the members of large groups and ends before its members pass the response budget;
//! `GET /Groups/{id}` pages a large group's members.
//!
//! How we know the memory stays bounded: this test binary counts every heap allocation (a
//! counting global allocator); the API runs in-process, so the peak heap growth during one
//! listing is measured and compared with the heap that holding every user takes.
//!
//! `make test` runs 1,500 users; `make bench` runs 20,000 (`listing_at_20000_users`, ignored).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use idlcm::store::keys;
use idlcm::store::resources::{Kind, Stored};
use idlcm::store::{key, s};
use idlcm_tests::world::user_body;
use idlcm_tests::{Integration, Stack, batch_put};
use serde_json::{Value, json};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result and the peak heap growth while it ran.
async fn peak_growth<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f.await;
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

async fn get(stack: &Stack, i: &Integration, path: &str) -> (u16, usize, Value) {
    let resp =
        stack.http.get(format!("{}{path}", i.scim_base_url)).bearer_auth(&i.token).send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, text.len(), serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `n` users (`user00000@…` in a scrambled creation order) and a group "Big" with all of them.
async fn seed(stack: &Stack, i: &Integration, n: usize) -> String {
    let (status, group) = i
        .call(
            &stack.http,
            "POST",
            "/Groups",
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Big"})),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();
    let now = idlcm::service::now();
    let pk = keys::integration_pk(&i.id);
    let mut items = Vec::with_capacity(n * 4);
    for k in 0..n {
        let name = format!("user{:05}@example.com", (k * 7919) % n);
        let doc = idlcm::scim::resource::normalise(&idlcm::scim::schema::USER_TYPE, user_body(&name)).unwrap();
        let stored = Stored {
            id: ulid::Ulid::new().to_string(),
            doc,
            version: 1,
            created: now.clone(),
            last_modified: now.clone(),
        };
        items.extend(stored.items(&i.id, Kind::User).unwrap());
        for sk in [keys::member_sk(&gid, &stored.id), keys::member_of_sk(&stored.id, &gid)] {
            let mut row = key(pk.clone(), sk);
            row.insert("group_id".into(), s(&gid));
            row.insert("user_id".into(), s(&stored.id));
            row.insert("display".into(), s(&name));
            items.push(row);
        }
    }
    batch_put(&aws_sdk_dynamodb::Client::new(&stack.aws), &stack.table, &items).await;
    gid
}

/// The heap it takes to hold every user of the integration, as the old listing did.
async fn heap_of_all_users(stack: &Stack, i: &Integration) -> usize {
    let store = stack.store();
    let (all, grew) = peak_growth(async {
        let (mut all, mut next) = (Vec::new(), None);
        loop {
            let (rows, more) = store.list_page(&i.id, Kind::User, next, 500).await.unwrap();
            all.extend(rows);
            match more {
                Some(k) => next = Some(k),
                None => break all,
            }
        }
    })
    .await;
    let held = CURRENT.load(Ordering::Relaxed);
    drop(all);
    let freed = held - CURRENT.load(Ordering::Relaxed);
    freed.min(grew)
}

async fn listing_at(n: usize) {
    let stack = Stack::start().await;
    let i = stack.create_integration("Listing").await;
    let started = std::time::Instant::now();
    let gid = seed(&stack, &i, n).await;
    println!("listing: seeded {n} users and a {n}-member group in {:.1} s", started.elapsed().as_secs_f64());
    let all_users = heap_of_all_users(&stack, &i).await;

    // Sorted, near the end: the last 11 names, in order.
    let start = n - 10;
    let t = std::time::Instant::now();
    let ((status, bytes, page), peak) =
        peak_growth(get(&stack, &i, &format!("/Users?sortBy=userName&startIndex={start}&count=100"))).await;
    assert_eq!(status, 200, "{page}");
    let names: Vec<&str> =
        page["Resources"].as_array().unwrap().iter().map(|r| r["userName"].as_str().unwrap()).collect();
    let want: Vec<String> = (start - 1..n).map(|k| format!("user{k:05}@example.com")).collect();
    assert_eq!(names, want);
    assert_eq!(page["totalResults"], n);
    println!(
        "listing: sorted startIndex={start}: {:.2} s, {bytes} bytes, peak heap growth {:.1} MB; holding all {n} users takes {:.1} MB",
        t.elapsed().as_secs_f64(),
        peak as f64 / 1e6,
        all_users as f64 / 1e6
    );
    if n >= 10_000 {
        assert!(peak < all_users / 4, "the listing held {peak} bytes; all users take {all_users}");
    }

    let t = std::time::Instant::now();
    let ((status, _, page), peak_far) =
        peak_growth(get(&stack, &i, "/Users?sortBy=userName&startIndex=2000000000")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!((page["totalResults"].as_u64(), page["Resources"].as_array().map(Vec::len)), (Some(n as u64), Some(0)));
    println!(
        "listing: sorted startIndex=2000000000: {:.2} s, peak heap growth {:.1} MB",
        t.elapsed().as_secs_f64(),
        peak_far as f64 / 1e6
    );
    if n >= 10_000 {
        assert!(peak_far < all_users / 4, "the listing held {peak_far} bytes; all users take {all_users}");
    }

    // A /Groups page: the large group is listed, without its members.
    let (status, bytes, page) = get(&stack, &i, "/Groups").await;
    assert_eq!(status, 200, "{page}");
    let big = page["Resources"].as_array().unwrap().iter().find(|g| g["id"] == gid.as_str()).expect("listed");
    assert!(big.get("members").is_none(), "members of a {n}-member group left out of the list");
    assert!(bytes < 6_000_000);

    // GET /Groups/{id}: every member, 10,000 per answer, each answer under 6 MB.
    let mut seen = std::collections::HashSet::new();
    let mut path = format!("/Groups/{gid}");
    let mut answers = 0;
    loop {
        let (status, bytes, group) = get(&stack, &i, &path).await;
        assert_eq!(status, 200, "{group}");
        assert!(bytes < 6_000_000, "{bytes} bytes");
        answers += 1;
        let members = group["members"].as_array().unwrap();
        assert!(members.len() <= 10_000);
        for m in members {
            assert!(seen.insert(m["value"].as_str().unwrap().to_string()), "a member twice");
        }
        match group[idlcm::service::groups::MEMBERS_PAGE]["next"].as_str() {
            Some(next) => path = next.strip_prefix(&i.scim_base_url).unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), n);
    assert_eq!(answers, n.div_ceil(10_000));
}

#[tokio::test]
async fn listing_at_1500_users() {
    listing_at(1_500).await;
}

#[tokio::test]
#[ignore = "make bench: 20,000 users on the emulator"]
async fn listing_at_20000_users() {
    listing_at(20_000).await;
}
