use super::*;
use crate::forge::key_marker;

fn repo() -> RepoRef {
    RepoRef::parse("local/work-orders").unwrap()
}

fn draft(key: &str, label: &str) -> IssueDraft {
    IssueDraft {
        title: format!("[P0] {key} | failing"),
        body: format!("## {key} is red\n\nbody text\n\n{}\n", key_marker(key)),
        labels: vec![
            "cluster-doctor".into(),
            "priority/P0".into(),
            label.into(),
            label.into(),
        ],
    }
}

#[tokio::test]
async fn create_comment_close_reopen_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let forge = DirForge::open(dir.path()).unwrap();
    let a = forge
        .create(
            &repo(),
            &draft("prod/pets/deployment/store-front", "triage/aaa"),
        )
        .await
        .unwrap();
    let b = forge
        .create(&repo(), &draft("prod/pets/deployment/orders", "triage/bbb"))
        .await
        .unwrap();
    assert_eq!((a.number, b.number), (1, 2));
    assert!(
        a.url.ends_with("00001-prod-pets-deployment-store-front.md"),
        "{}",
        a.url
    );

    forge
        .comment(&a, "**Still failing** — 3 occurrences")
        .await
        .unwrap();
    forge.comment(&a, "second").await.unwrap();
    forge
        .add_labels(&a, &["priority/P1".into(), "cluster-doctor".into()])
        .await
        .unwrap();
    forge
        .remove_labels(&a, &["priority/P0".into()])
        .await
        .unwrap();
    forge
        .set_state(&a, IssueState::Closed, Some(CloseReason::Completed))
        .await
        .unwrap();

    let text = std::fs::read_to_string(&a.url).unwrap();
    let (meta, rest) = parse_file(&text).unwrap();
    assert_eq!(meta.state, IssueState::Closed);
    assert_eq!(meta.state_reason.as_deref(), Some("completed"));
    assert_eq!(meta.labels, ["cluster-doctor", "triage/aaa", "priority/P1"]);
    assert_eq!(meta.comments, 2);
    assert!(rest.starts_with("## prod/pets/deployment/store-front is red"));
    let first = rest.find("### Comment 1").unwrap();
    let second = rest.find("### Comment 2").unwrap();
    assert!(first < second);
    assert!(rest.contains("**Still failing** — 3 occurrences"));

    forge.set_state(&a, IssueState::Open, None).await.unwrap();
    let found = forge
        .find_by_key(&repo(), "prod/pets/deployment/store-front", "triage/aaa")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.issue, a);
    assert_eq!(found.state, IssueState::Open);

    let index = std::fs::read_to_string(dir.path().join(INDEX)).unwrap();
    assert!(index.contains("| [1](00001-prod-pets-deployment-store-front.md) | open | P1 | [P0] prod/pets/deployment/store-front \\| failing |"), "{index}");
    assert!(
        index.find("[2]").unwrap() < index.find("[1]").unwrap(),
        "newest first"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn find_by_key_verifies_the_marker_and_prefers_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let forge = DirForge::open(dir.path()).unwrap();
    let key = "prod/pets/deployment/store-front";
    assert!(
        forge
            .find_by_key(&repo(), key, "triage/aaa")
            .await
            .unwrap()
            .is_none()
    );
    // Same label, different marker (a hash collision or a hand-made issue): not ours.
    forge
        .create(&repo(), &draft("prod/other/deployment/x", "triage/aaa"))
        .await
        .unwrap();
    assert!(
        forge
            .find_by_key(&repo(), key, "triage/aaa")
            .await
            .unwrap()
            .is_none()
    );
    let first = forge
        .create(&repo(), &draft(key, "triage/aaa"))
        .await
        .unwrap();
    forge
        .set_state(&first, IssueState::Closed, None)
        .await
        .unwrap();
    let second = forge
        .create(&repo(), &draft(key, "triage/aaa"))
        .await
        .unwrap();
    let found = forge
        .find_by_key(&repo(), key, "triage/aaa")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.issue.number, second.number);
    // Another repository's issues are not ours either.
    let other = RepoRef::parse("acme/elsewhere").unwrap();
    assert!(
        forge
            .find_by_key(&other, key, "triage/aaa")
            .await
            .unwrap()
            .is_none()
    );
    // A marker pasted into a comment does not make an issue match.
    let decoy = forge
        .create(&repo(), &draft("prod/x/deployment/y", "triage/ccc"))
        .await
        .unwrap();
    forge
        .comment(&decoy, &key_marker("prod/pets/deployment/z"))
        .await
        .unwrap();
    assert!(
        forge
            .find_by_key(&repo(), "prod/pets/deployment/z", "triage/ccc")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn reopening_the_directory_keeps_numbers_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    {
        let forge = DirForge::open(dir.path()).unwrap();
        forge
            .create(&repo(), &draft("k/1", "triage/1"))
            .await
            .unwrap();
        forge
            .create(&repo(), &draft("k/2", "triage/2"))
            .await
            .unwrap();
        let err = DirForge::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("in use by another Triage process"), "{err}");
    }
    let forge = DirForge::open(dir.path()).unwrap();
    let third = forge
        .create(&repo(), &draft("k/3", "triage/3"))
        .await
        .unwrap();
    assert_eq!(third.number, 3);
    let mut all = forge.list_work_orders(&repo()).await.unwrap();
    all.sort_by_key(|f| f.issue.number);
    let keys: Vec<_> = all.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["k/1", "k/2", "k/3"]);
}

#[tokio::test]
async fn operations_on_unknown_issues_are_permanent_errors() {
    let dir = tempfile::tempdir().unwrap();
    let forge = DirForge::open(dir.path()).unwrap();
    let ghost = IssueRef {
        repo: repo(),
        number: 42,
        url: "nowhere".into(),
    };
    let err = forge.comment(&ghost, "x").await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("#42"), "{err}");
}

#[test]
fn slugs_are_file_safe() {
    assert_eq!(
        slug("prod/pets/deployment/store-front"),
        "prod-pets-deployment-store-front"
    );
    assert_eq!(
        slug("prod/_cluster/alert/X/#abc"),
        "prod-cluster-alert-x-abc"
    );
    assert_eq!(slug("///"), "work-order");
    assert!(slug(&"a".repeat(500)).len() <= 80);
}
