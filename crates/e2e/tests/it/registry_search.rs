//! wharf-registry's `/v1/search`, the API `docker search HOST/TERM` asks: through the docker
//! CLI against wharfd and against a private dockerd (the oracle for what the daemon sends and
//! makes of the answer), on the open registry and with the Harbor model on, where each caller
//! finds only what it may pull.

use serde_json::Value;

use crate::dockerd::Dockerd;
use crate::harness::Daemon;
use crate::registry_harbor::{add_member, admin, admin_authz, basic, make_project, make_user, push_image_as, PW};
use crate::registry_server::{auth_server, http, Server};

fn names(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn search(reg: &Server, authz: Option<&str>, query: &str) -> crate::registry_server::Resp {
    let h: Vec<(&str, &str)> = authz.map(|a| vec![("Authorization", a)]).unwrap_or_default();
    http(&reg.addr, "GET", &format!("/v1/search?{query}"), &h, b"")
}

/// The NAME column of `docker search`'s table.
fn listed(out: &crate::harness::Output) -> Vec<String> {
    out.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect()
}

#[test]
fn v1_search_on_the_open_registry_as_dockerd_and_wharfd_see_it() {
    let reg = Server::start();
    for repo in ["library/busybox", "tools/busybox-extra", "other/alpine"] {
        reg.push_image(repo, "1", repo.as_bytes());
    }
    let r = search(&reg, None, "q=BusyBox&n=25");
    assert_eq!(r.status, 200, "{r}");
    let v = r.json();
    assert_eq!(names(&v), ["library/busybox", "tools/busybox-extra"], "case-insensitive, in name order: {v}");
    assert_eq!((v["num_results"].as_u64(), v["query"].as_str()), (Some(2), Some("BusyBox")));
    assert_eq!(v["results"][0]["star_count"], 0);
    assert_eq!(v["results"][0]["is_official"], false);
    // Paging, and what is out of range.
    let v = search(&reg, None, "q=busybox&n=1&page=2").json();
    assert_eq!(
        (names(&v), v["num_pages"].as_u64(), v["page"].as_u64()),
        (vec!["tools/busybox-extra".to_string()], Some(2), Some(2))
    );
    search(&reg, None, "q=busybox&n=101").fails(400, "PAGINATION_NUMBER_INVALID");
    search(&reg, None, "q=busybox&n=zero").fails(400, "PAGINATION_NUMBER_INVALID");
    let r = http(&reg.addr, "DELETE", "/v1/search?q=x", &[], b"");
    assert_eq!(r.status, 405, "{r}");

    // The docker CLI through each daemon: the same table.
    let term = format!("{}/busybox", reg.addr);
    let dockerd = Dockerd::start(&[&reg.addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    let theirs = dockerd.cli(&["search", &term]);
    let d = Daemon::start();
    let ours = d.docker(&["search", &term]);
    assert_eq!(ours.ok().stdout, theirs.ok().stdout, "wharfd vs dockerd");
    assert_eq!(listed(&ours), ["library/busybox", "tools/busybox-extra"], "{ours}");
    let limited = d.docker(&["search", "--limit", "1", &term]);
    assert_eq!(listed(&limited), ["library/busybox"], "{limited}");
    let wharf = d.wharf(&["search", &term]);
    assert_eq!(listed(&wharf), ["library/busybox", "tools/busybox-extra"], "{wharf}");
}

#[test]
fn harbor_v1_search_finds_only_what_the_caller_may_pull() {
    let reg = auth_server(&[]);
    make_user(&reg, "eve");
    make_user(&reg, "mallory");
    make_project(&reg, &admin(), "pub", true);
    make_project(&reg, &admin(), "team", false);
    make_project(&reg, &admin(), "secret", false);
    add_member(&reg, "team", "eve", 3); // Guest: may pull
    let a = admin_authz();
    for repo in ["pub/busybox", "team/busybox", "secret/busybox", "team/alpine"] {
        push_image_as(&reg, &a, repo, "1", repo.as_bytes());
    }
    let found = |authz: Option<&str>| {
        let r = search(&reg, authz, "q=busybox");
        assert_eq!(r.status, 200, "{r}");
        names(&r.json())
    };
    assert_eq!(found(None), ["pub/busybox"], "anonymous: public projects only");
    assert_eq!(found(Some(&basic("eve", PW))), ["pub/busybox", "team/busybox"]);
    assert_eq!(found(Some(&basic("mallory", PW))), ["pub/busybox"]);
    assert_eq!(found(Some(&a)), ["pub/busybox", "secret/busybox", "team/busybox"], "the admin sees all");
    // A bearer token from /token names its subject as well.
    let eve = basic("eve", PW);
    let r = http(
        &reg.addr,
        "GET",
        "/token?service=wharf-registry&scope=repository:team/busybox:pull",
        &[("Authorization", &eve)],
        b"",
    );
    assert_eq!(r.status, 200, "{r}");
    let token = r.json()["token"].as_str().unwrap_or_default().to_string();
    assert_eq!(found(Some(&format!("Bearer {token}"))), ["pub/busybox", "team/busybox"]);
    // Wrong credentials are refused, not searched anonymously.
    search(&reg, Some(&basic("eve", "Wrong12345")), "q=busybox").fails(401, "UNAUTHORIZED");
    search(&reg, Some("Bearer not-a-token"), "q=busybox").fails(401, "UNAUTHORIZED");

    // docker login then docker search, through wharfd and through dockerd: eve's view.
    let term = format!("{}/busybox", reg.addr);
    let d = Daemon::start();
    let dockerd = Dockerd::start(&[&reg.addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    assert_eq!(listed(d.docker(&["search", &term]).ok()), ["pub/busybox"], "before login");
    d.docker(&["login", "-u", "eve", "-p", PW, &reg.addr]).ok();
    dockerd.cli(&["login", "-u", "eve", "-p", PW, &reg.addr]).ok();
    let (ours, theirs) = (d.docker(&["search", &term]), dockerd.cli(&["search", &term]));
    assert_eq!(listed(&theirs), ["pub/busybox", "team/busybox"], "dockerd: {theirs}");
    assert_eq!(listed(&ours), ["pub/busybox", "team/busybox"], "{ours}");
    assert_eq!(ours.ok().stdout, theirs.ok().stdout, "wharfd vs dockerd");
}
