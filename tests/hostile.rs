//! Hostile input and hostile configuration (docs/contract.md "Limits", "Unicode and case",
//! "Outbound calls"): every case answers a 4xx with a SCIM error, never a 500 or a panic, and a
//! refused request leaves the stored state as it was. The API in-process on 127.0.0.1,
//! DynamoDB and SQS on moto, the real worker, real HTTP targets on loopback.
//!
//! Listings stay bounded whatever the integration holds: a sorted listing keeps sort keys,
//! never resources, for any `startIndex`; a `/Groups` page leaves out the members of large
//! groups and ends before its members pass the response budget; `GET /Groups/{id}` pages a
//! large group's members. How we know the memory stays bounded: this test binary counts every
//! heap allocation (a counting global allocator); the API runs in-process, so the peak heap
//! growth during one listing is measured and compared with the heap that holding every user
//! takes. `make test` runs 1,500 users; `make bench` runs 20,000 (`listing_at_20000_users`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idlcm::store::keys;
use idlcm::store::provisioning::JobRow;
use idlcm::store::resources::Kind;
use idlcm::store::{key, s};
use idlcm_tests::robot::Robot;
use idlcm_tests::world::{handler, patch, stored_user, user_body};
use idlcm_tests::{Integration, Stack, batch_put};
use serde_json::{Value, json};

async fn scim(stack: &Stack, i: &Integration, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    i.call(&stack.http, method, path, body).await
}

fn scim_error(v: &Value) -> (Option<&str>, &str) {
    (v["scimType"].as_str(), v["detail"].as_str().unwrap_or_default())
}

async fn user_count(stack: &Stack, i: &Integration) -> u64 {
    let (status, list) = scim(stack, i, "GET", "/Users?count=0", None).await;
    assert_eq!(status, 200, "{list}");
    list["totalResults"].as_u64().unwrap()
}

#[tokio::test]
async fn keys_with_multibyte_characters_never_panic() {
    let stack = Stack::start().await;
    let i = stack.create_integration("Multibyte").await;
    let mut body = user_body("mb@example.com");
    body["ab€"] = json!("x");
    body["€"] = json!("y");
    let (status, created) = scim(&stack, &i, "POST", "/Users", Some(body)).await;
    assert_eq!(status, 201, "an unknown attribute is dropped, whatever its name: {created}");
    assert!(created.get("ab€").is_none());
    let id = created["id"].as_str().unwrap();
    let ops = patch(json!([{"op": "add", "value": {"ab€": "x", "ur€": 1, "title": "Engineer"}}]));
    let (status, patched) = scim(&stack, &i, "PATCH", &format!("/Users/{id}"), Some(ops)).await;
    assert!(status == 200 || status == 204, "{status} {patched}");
    let (_, user) = scim(&stack, &i, "GET", &format!("/Users/{id}"), None).await;
    assert_eq!(user["title"], "Engineer");
    let (status, err) = scim(
        &stack,
        &i,
        "PATCH",
        &format!("/Users/{id}"),
        Some(patch(json!([{"op": "replace", "path": "ab€[", "value": 1}]))),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(scim_error(&err).0, Some("invalidPath"));
}

#[tokio::test]
async fn oversized_resources_are_refused_before_anything_is_written() {
    let stack = Stack::start().await;
    let i = stack
        .create_integration_with(json!({
            "name": "Sizes",
            "connector": {"type": "webhook", "url": "http://127.0.0.1:9/unused", "secret": "s"},
            "attributes": ["userName", "title"],
        }))
        .await;

    // 450 KB: past DynamoDB's item limit, and past ours.
    let mut body = user_body("big@example.com");
    body["title"] = json!("t".repeat(450 * 1024));
    let (status, err) = scim(&stack, &i, "POST", "/Users", Some(body)).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(scim_error(&err).0, Some("invalidValue"));
    assert!(scim_error(&err).1.contains("at most 65536 bytes"), "{err}");
    assert_eq!(user_count(&stack, &i).await, 0, "nothing was stored");

    // A body past the request limit: 413.
    let mut body = user_body("huge@example.com");
    body["title"] = json!("t".repeat(1100 * 1024));
    let (status, err) = scim(&stack, &i, "POST", "/Users", Some(body)).await;
    assert_eq!(status, 413, "{err}");
    assert_eq!(err["status"], "413");

    // A user near the limit with a large mapped attribute can still be updated, and its jobs
    // stay small: Activity shows the value cut.
    let mut body = user_body("near@example.com");
    body["title"] = json!("a".repeat(60 * 1024));
    let (status, created) = scim(&stack, &i, "POST", "/Users", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let ops = patch(json!([{"op": "replace", "path": "title", "value": "b".repeat(60 * 1024)}]));
    let (status, _) = scim(&stack, &i, "PATCH", &format!("/Users/{id}"), Some(ops)).await;
    assert!(status == 200 || status == 204);
    let items = stack.store().query_all(keys::integration_pk(&i.id), "JOB#".into()).await.unwrap();
    let jobs: Vec<JobRow> = items.into_iter().map(|j| serde_dynamo::from_item(j).unwrap()).collect();
    assert_eq!(jobs.len(), 2, "provision and update");
    for job in &jobs {
        let size = serde_json::to_string(job).unwrap().len();
        assert!(size < 4 * 1024, "job row of {size} bytes");
    }
    let update = jobs.iter().find(|j| j.action == "update").unwrap();
    assert!(update.after.as_deref().unwrap().contains("(61440 characters)"), "{:?}", update.after);

    // A PATCH that would take the user past the limit: 400, and the user is unchanged.
    let (_, before) = scim(&stack, &i, "GET", &format!("/Users/{id}"), None).await;
    let ops = patch(json!([{"op": "add", "path": "nickName", "value": "n".repeat(10 * 1024)}]));
    let (status, err) = scim(&stack, &i, "PATCH", &format!("/Users/{id}"), Some(ops)).await;
    assert_eq!((status, scim_error(&err).0), (400, Some("invalidValue")), "{err}");
    let (_, after) = scim(&stack, &i, "GET", &format!("/Users/{id}"), None).await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn composed_and_decomposed_names_are_one_user_and_filters_agree() {
    let stack = Stack::start().await;
    let i = stack.create_integration("Unicode").await;
    let composed = "jos\u{e9}@example.com";
    let decomposed = "jose\u{301}@example.com";
    let (status, created) = scim(&stack, &i, "POST", "/Users", Some(user_body(composed))).await;
    assert_eq!(status, 201, "{created}");
    let (status, err) = scim(&stack, &i, "POST", "/Users", Some(user_body(decomposed))).await;
    assert_eq!((status, scim_error(&err).0), (409, Some("uniqueness")), "{err}");
    assert_eq!(user_count(&stack, &i).await, 1);

    let filter = |name: &str| format!("/Users?filter={}", urlencoding::encode(&format!("userName eq \"{name}\"")));
    let (_, found) = scim(&stack, &i, "GET", &filter(&decomposed.to_uppercase()), None).await;
    assert_eq!(found["totalResults"], 1, "{found}");
    // A filter the key lookup does not serve (a substring) folds the same way.
    let co = format!("/Users?filter={}", urlencoding::encode("userName co \"JOSE\u{301}\""));
    let (_, found) = scim(&stack, &i, "GET", &co, None).await;
    assert_eq!(found["totalResults"], 1, "{found}");

    // Titlecase letters fold like their upper and lower case.
    let (status, _) = scim(&stack, &i, "POST", "/Users", Some(user_body("\u{1c5}emal@example.com"))).await;
    assert_eq!(status, 201);
    let (status, err) = scim(&stack, &i, "POST", "/Users", Some(user_body("\u{1c4}EMAL@example.com"))).await;
    assert_eq!((status, scim_error(&err).0), (409, Some("uniqueness")), "{err}");
    let (_, found) = scim(&stack, &i, "GET", &filter("\u{1c6}emal@example.com"), None).await;
    assert_eq!(found["totalResults"], 1, "{found}");
}

#[tokio::test]
async fn a_sorted_listing_far_past_the_end_is_an_empty_page() {
    let stack = Stack::start().await;
    let i = stack.create_integration("Sorted").await;
    for n in 0..3 {
        let (status, _) = scim(&stack, &i, "POST", "/Users", Some(user_body(&format!("u{n}@example.com")))).await;
        assert_eq!(status, 201);
    }
    let (status, page) = scim(&stack, &i, "GET", "/Users?sortBy=userName&startIndex=2000000000", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!((page["totalResults"].as_u64(), page["Resources"].as_array().map(Vec::len)), (Some(3), Some(0)));
    let (_, page) =
        scim(&stack, &i, "GET", "/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=1", None).await;
    assert_eq!(page["Resources"][0]["userName"], "u1@example.com", "{page}");
    let (status, err) = scim(&stack, &i, "GET", "/Users?sortBy=userName&startIndex=49999&count=5", None).await;
    assert_eq!(status, 200, "fewer matches than startIndex: an empty page, not an error: {err}");
    let (_, spc) = scim(&stack, &i, "GET", "/ServiceProviderConfig", None).await;
    assert_eq!(spc["filter"]["maxResults"], 200, "{spc}");
}

/// Saving each bad connector answers 400 naming the field; nothing is stored.
#[tokio::test]
async fn bad_connectors_are_refused_when_saved() {
    let stack = Stack::start().await;
    let http = |base_url: &str, path: &str| {
        json!({"name": "Bad", "connector": {"type": "http", "base_url": base_url,
            "operations": {"provision": {"method": "POST", "path": path}}}})
    };
    let webhook = |url: &str| json!({"name": "Bad", "connector": {"type": "webhook", "url": url, "secret": "s"}});
    let (_, before) = stack.admin("GET", "/integrations", None).await;
    for (config, field, why) in [
        (http("file:///etc/passwd", "/users"), "connector.base_url", "scheme must be https"),
        (http("http://169.254.169.254", "/latest/meta-data/"), "connector.base_url", "plain http"),
        (http("https://169.254.169.254", "/latest/meta-data/"), "connector.base_url", "link-local"),
        (http("https://[fd00:ec2::254]", "/"), "connector.base_url", "metadata"),
        (http("https://10.0.0.8", "/users"), "connector.base_url", "allow_private_network"),
        (http("https://app.example.com", "/users/{{ user.userName"), "connector.operations.provision.path", ""),
        (webhook("http://robot.example.com/hook"), "connector.url", "plain http"),
        (webhook("https://user:pw@robot.example.com/hook"), "connector.url", "credentials"),
        (webhook("https://localhost./hook"), "connector.url", ""),
    ] {
        let (status, err) = stack.admin("POST", "/integrations", Some(config.clone())).await;
        let detail = err["detail"].as_str().unwrap_or_default();
        if field == "connector.url" && why.is_empty() {
            // https to localhost is loopback: allowed on this local stack, named literally.
            assert_eq!(status, 201, "{err}");
            continue;
        }
        assert_eq!((status, err["scimType"].as_str()), (400, Some("invalidValue")), "{config}: {err}");
        assert!(detail.starts_with(&format!("{field}: ")), "{config}: {detail}");
        assert!(detail.contains(why), "{config}: {detail}");
    }
    // A private app, allowed explicitly.
    let mut private = http("https://10.0.0.8", "/users");
    private["allow_private_network"] = json!(true);
    let (status, err) = stack.admin("POST", "/integrations", Some(private)).await;
    assert_eq!(status, 201, "{err}");
    let (_, after) = stack.admin("GET", "/integrations", None).await;
    assert_eq!(after["items"].as_array().unwrap().len(), before["items"].as_array().unwrap().len() + 2);
}

/// A DNS name that resolves, when the job runs, to loopback or the metadata address fails the
/// job with a clear error, and nothing reaches the address.
#[tokio::test]
async fn a_name_resolving_to_loopback_or_metadata_at_call_time_fails_the_job() {
    let robot = Robot::start().await;
    let port = robot.url.trim_start_matches("http://127.0.0.1:").split('/').next().unwrap().to_string();
    let stack = Stack::start().await;
    for (name, ip, why) in [
        ("rebind.idlcm.test", "127.0.0.1", "loopback address reached through DNS"),
        ("metadata.idlcm.test", "169.254.169.254", "link-local or instance metadata"),
    ] {
        // Saved while the name does not resolve (it never does here): accepted.
        let i = stack
            .create_integration_with(json!({
                "name": name,
                "connector": {"type": "webhook", "url": format!("https://{name}:{port}/hook"), "secret": "s"},
            }))
            .await;
        let (status, _) = scim(&stack, &i, "POST", "/Users", Some(user_body("dns@example.com"))).await;
        assert_eq!(status, 201);
        let mut worker = stack.worker();
        let ip: IpAddr = ip.parse().unwrap();
        worker.http = idlcm::connector::OutboundClients::with_hosts(true, &[(name, ip)]);
        stack.event_source().run_until(handler(Arc::new(worker)), || async { true }, Duration::from_secs(30)).await;
        let items = stack.store().query_all(keys::integration_pk(&i.id), "JOB#".into()).await.unwrap();
        let job: JobRow = serde_dynamo::from_item(items.into_iter().next().expect("a job")).unwrap();
        assert_eq!(job.status, "failed", "{job:?}");
        let error = job.error.unwrap_or_default();
        assert!(error.contains("refused by the outbound rule") && error.contains(why), "{error}");
        assert!(error.contains(name), "{error}");
    }
    assert!(robot.received().is_empty(), "nothing reached the loopback listener");
}

#[tokio::test]
async fn admin_reads_hide_literal_credentials_in_headers_and_keep_them_on_save() {
    let stack = Stack::start().await;
    let config = json!({"name": "Headers", "connector": {"type": "http", "base_url": "https://app.example.com",
        "headers": {"Authorization": "Bearer abcdef0123456789literal", "X-Api-Key": "{{ secret }}",
                    "X-Tenant": "acme", "X-Trace": "a1b2c3d4e5f6a7b8c9d0e1f2"},
        "secret": "s3cret",
        "operations": {"provision": {"method": "POST", "path": "/users"}}}});
    let i = stack.create_integration_with(config).await;
    let (status, shown) = stack.admin("GET", &format!("/integrations/{}", i.id), None).await;
    assert_eq!(status, 200);
    let headers = &shown["config"]["connector"]["headers"];
    assert_eq!(headers["Authorization"], "***");
    assert_eq!(headers["X-Api-Key"], "{{ secret }}");
    assert_eq!(headers["X-Tenant"], "acme");
    assert_eq!(headers["X-Trace"], "***");
    assert_eq!(shown["config"]["connector"]["secret"], "***");
    assert!(!shown.to_string().contains("abcdef0123456789literal"));

    // What GET showed, saved back: the stored values stay.
    let mut edited = shown["config"].clone();
    edited["name"] = json!("Headers 2");
    let (status, err) = stack.admin("PUT", &format!("/integrations/{}", i.id), Some(edited)).await;
    assert_eq!(status, 200, "{err}");
    let stored = stack.store().get_integration(&i.id).await.unwrap().unwrap().config_json();
    assert_eq!(stored["connector"]["headers"]["Authorization"], "Bearer abcdef0123456789literal");
    assert_eq!(stored["connector"]["secret"], "s3cret");
    assert_eq!(stored["name"], "Headers 2");
}

#[tokio::test]
async fn callbacks_answer_alike_for_unknown_and_known_integrations() {
    let stack = Stack::start().await;
    let i = stack.create_integration("Callbacks").await;
    let post = |iid: String| {
        let http = stack.http.clone();
        let url = format!("{}/callbacks/{iid}/jobs/j-1", stack.api_url);
        async move {
            let resp = http
                .post(url)
                .header("x-idlcm-signature", "t=1,v1=00")
                .body(r#"{"job_id":"j-1","status":"succeeded"}"#)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let known = post(i.id.clone()).await;
    let unknown = post("01hzzzzzzzzzzzzzzzzzzzzzzz".into()).await;
    assert_eq!(known.0, 401);
    assert_eq!(known, unknown);
}

// ---------------------------------------------------------------------------------------------
// Bounded listings
// ---------------------------------------------------------------------------------------------

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
        let stored = stored_user(&name, &now);
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
    println!("listing: GET /Groups with a {n}-member group: {bytes} bytes");

    // GET /Groups/{id}: every member, 10,000 per answer, each answer under 6 MB.
    let mut seen = std::collections::HashSet::new();
    let mut path = format!("/Groups/{gid}");
    let (mut answers, mut largest) = (0, 0);
    loop {
        let (status, bytes, group) = get(&stack, &i, &path).await;
        assert_eq!(status, 200, "{group}");
        assert!(bytes < 6_000_000, "{bytes} bytes");
        answers += 1;
        largest = largest.max(bytes);
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
    let (status, _, err) = get(&stack, &i, &format!("/Groups/{gid}?membersAfter={}", "x".repeat(2000))).await;
    assert_eq!((status, err["scimType"].as_str()), (400, Some("invalidValue")), "{err}");
    println!("listing: GET /Groups/{{id}}: {n} members in {answers} answer(s), the largest {largest} bytes");
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
