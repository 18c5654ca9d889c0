//! The queue's typed jobs, lanes and backoff.
use super::*;

#[test]
fn rows_decode_into_typed_jobs_or_fail_clearly() {
    let mail = br#"{"to":"a@example.com","subject":"Hi","body":"Hello"}"#;
    assert!(matches!(Job::decode("mail", mail), Ok(Job::Mail(m)) if m.to == "a@example.com"));
    let asset = AssetId::generate();
    let media = format!(r#"{{"asset_id":"{asset}"}}"#);
    assert!(
        matches!(Job::decode("media", media.as_bytes()), Ok(Job::Media(m)) if m.asset_id == asset)
    );
    let fails = |kind: &str, plain: &[u8]| match Job::decode(kind, plain) {
        Err(JobFailure::Permanent(m)) => m,
        other => panic!("{kind} {plain:?}: {other:?}"),
    };
    assert_eq!(
        fails("frobnicate", b"{}"),
        "unknown job kind \"frobnicate\": this server runs mail, media, region_move"
    );
    let org = OrgId::generate();
    let moving = format!(r#"{{"org_id":"{org}","to":"us"}}"#);
    assert!(
        matches!(Job::decode("region_move", moving.as_bytes()), Ok(Job::RegionMove(m)) if m.org_id == org && m.to == "us")
    );
    assert!(fails("region_move", b"{}").contains("does not parse"));
    assert!(fails("media", b"{}").starts_with("the payload of this media job does not parse"));
    assert!(fails("media", br#"{"asset_id":"usr_1"}"#).contains("does not parse"));
    assert!(fails("mail", mail.split_at(10).0).contains("does not parse"));
    // What is sealed is the kind's struct as JSON, as rows queued by earlier releases hold.
    let job = Job::Media(MediaJob {
        asset_id: asset.clone(),
    });
    assert!(matches!(job.encode(), Ok(sealed) if sealed == media.into_bytes()));
    assert_eq!(job.subject(), Some(asset.to_string()));
}

#[test]
fn lanes_split_the_kinds_and_cap_media_per_organization() {
    let config = JobsConfig::default();
    for kind in JobKind::ALL {
        assert_eq!(JobKind::parse(kind.name()), Some(kind));
    }
    let media = Lane::Media.filter(&config);
    assert_eq!(
        (media.kinds, media.except, media.per_org),
        (vec!["media".to_owned()], false, Some(1))
    );
    // The mail lane takes everything but media and storage work, unknown kinds included.
    let mail = Lane::Mail.filter(&config);
    assert_eq!(
        (mail.kinds, mail.except, mail.per_org),
        (
            vec!["media".to_owned(), "region_move".to_owned()],
            true,
            None
        )
    );
    let storage = Lane::Storage.filter(&config);
    assert_eq!(
        (storage.kinds, storage.except, storage.per_org),
        (vec!["region_move".to_owned()], false, None)
    );
    let zero = JobsConfig {
        media_jobs_per_org: 0,
        ..config
    };
    assert_eq!(Lane::Media.filter(&zero).per_org, Some(1));
}

#[test]
fn backoff_doubles_up_to_an_hour() {
    assert_eq!(backoff_secs(1), 5);
    assert_eq!(backoff_secs(2), 10);
    assert_eq!(backoff_secs(3), 20);
    assert_eq!(backoff_secs(10), 2560);
    assert_eq!(backoff_secs(11), 3600);
    assert_eq!(backoff_secs(u32::MAX), 3600);
}

#[test]
fn logged_job_errors_name_no_address() {
    assert_eq!(
        without_addresses(
            "the mail server refused: permanent error (550): 5.1.1 <bob.smith@example.com>: unknown"
        ),
        "the mail server refused: permanent error (550): 5.1.1 <<address>>: unknown"
    );
    assert_eq!(
        without_addresses("rcpt ann@example.org rejected"),
        "rcpt <address> rejected"
    );
    assert_eq!(
        without_addresses("cannot deliver through smtp://127.0.0.1:2525: timed out"),
        "cannot deliver through smtp://127.0.0.1:2525: timed out"
    );
}
