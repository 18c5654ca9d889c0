//! The server on an S3 backend: the s3s-fs test server (`scripts/s3.sh`, which checks
//! signatures) holds the blobs. Uploads, downloads whole and by range, deletes, a restart, and
//! what lands in the bucket's files. The blob-level behaviour of the backend is covered by the
//! conformance suite in `crates/blob`.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use strongroom_blob::PART_SIZE;
use strongroom_testkit::{TestS3, files_under};

use crate::support::*;

/// A config that puts the instance's blobs under a fresh key prefix of the test bucket, with
/// the credentials in the entry and a private file, as an operator would write it. Returns the
/// TOML and the prefix.
fn s3_config(s3: &TestS3, secrets: &Path) -> (String, String) {
    use std::os::unix::fs::PermissionsExt as _;
    let prefix = format!(
        "it-{}",
        strongroom_domain::UserId::generate()
            .as_str()
            .trim_start_matches("usr_")
            .to_ascii_lowercase()
    );
    let secret_file = secrets.join("s3.secret");
    std::fs::write(&secret_file, format!("{}\n", s3.secret_access_key)).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let toml = format!(
        "[[storage.backends]]\nname = \"s3-test\"\nurl = \"{}\"\nregion = \"eu\"\n\
         access_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n",
        s3.url_with_prefix(&prefix),
        s3.access_key_id,
        secret_file.display()
    );
    (toml, prefix)
}

async fn owner_and_space(srv: &TestServer) -> (Boot, String) {
    let boot = srv.bootstrap("owner@example.com", "acme");
    let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
    (boot, space)
}

/// Waits (up to 10 s) until `dir` holds `n` files.
async fn wait_for_files(dir: &Path, n: usize) -> Vec<std::path::PathBuf> {
    for _ in 0..100 {
        let files = files_under(dir);
        if files.len() == n {
            return files;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} holds {:?}, not {n} files",
        dir.display(),
        files_under(dir)
    );
}

crate::both_backends! {
    async fn uploads_downloads_and_deletes_on_s3_and_survive_a_restart(b: Backend) {
        let Some(s3) = TestS3::from_env() else { return };
        let secrets = tempfile::tempdir().unwrap();
        let (config, prefix) = s3_config(&s3, secrets.path());
        let Some(mut srv) = TestServer::start_with_config(b, &config).await else { return };
        let (boot, space) = owner_and_space(&srv).await;
        let key = boot.api_key.as_str();

        // Three S3 parts of ciphertext, and a blob small enough for one PUT.
        let big = pattern(2 * PART_SIZE + 300_001, 21);
        let small = pattern(1000, 22);
        let big_id = srv.upload(key, &space, "big.bin", big.clone()).await["id"].as_str().unwrap().to_owned();
        let small_id = srv.upload(key, &space, "small.bin", small.clone()).await["id"].as_str().unwrap().to_owned();
        assert!(download(&srv, key, &big_id).await == big, "big download differs");
        assert_eq!(download(&srv, key, &small_id).await, small);

        // Ranges: across the first part boundary, and the last bytes.
        let content = format!("/api/v1/assets/{big_id}/content");
        for (range, want) in [
            ("bytes=8000000-9000000", &big[8_000_000..=9_000_000]),
            ("bytes=-100", &big[big.len() - 100..]),
        ] {
            let res = srv.req(Method::GET, &content, Some(key)).header("range", range).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert!(res.bytes().await.unwrap()[..] == *want, "{range} returned other bytes");
        }

        // The blobs are objects in the bucket; the data dir holds none.
        let objects = s3.dir_of(&format!("{prefix}/objects"));
        assert_eq!(files_under(&objects).len(), 2, "{}", objects.display());
        assert!(srv.object_files().is_empty() && !srv.data_dir.join("blobs").exists());

        srv.restart().await;
        assert!(download(&srv, key, &big_id).await == big, "big download differs after the restart");
        assert_eq!(download(&srv, key, &small_id).await, small);

        // A purge removes the object from the bucket (a plain delete keeps it, in the trash).
        let res = srv.req(Method::DELETE, &format!("/api/v1/assets/{big_id}?purge=true"), Some(key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        expect_problem(srv.req(Method::GET, &content, Some(key)).send().await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
        wait_for_files(&objects, 1).await;
        assert_eq!(download(&srv, key, &small_id).await, small);

        // The audit checkpoints went to the bucket too, under their own prefix.
        srv.stop().await;
        let checkpoints = s3.dir_of(&format!("{prefix}/checkpoints/{}", boot.org_id));
        assert!(!files_under(&checkpoints).is_empty(), "no checkpoint in {}", checkpoints.display());
    }

    async fn plaintext_never_reaches_the_bucket(b: Backend) {
        let Some(s3) = TestS3::from_env() else { return };
        let secrets = tempfile::tempdir().unwrap();
        let (config, prefix) = s3_config(&s3, secrets.path());
        let Some(srv) = TestServer::start_with_config(b, &config).await else { return };
        let (boot, space) = owner_and_space(&srv).await;
        let marker = b"STRONGROOM-PLAINTEXT-MARKER-7f3a9c";
        // Large enough for a multipart upload, with the marker in each part.
        let mut data = pattern(PART_SIZE + 150_000, 5);
        for at in [0, 70_000, PART_SIZE + 100_000] {
            data[at..at + marker.len()].copy_from_slice(marker);
        }
        srv.upload(&boot.api_key, &space, "secret.txt", data.clone()).await;
        let part = reqwest::multipart::Part::bytes(data).file_name("secret2.txt");
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{space}/assets"), Some(&boot.api_key))
            .multipart(reqwest::multipart::Form::new().part("file", part)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(files_under(&s3.dir_of(&format!("{prefix}/objects"))).len(), 2);
        // Everything the S3 server keeps: every bucket, and its uploads in progress.
        let files = files_under(&s3.root);
        assert!(!files.is_empty());
        for f in files {
            // Other tests delete their objects meanwhile.
            let Ok(bytes) = std::fs::read(&f) else { continue };
            assert!(!contains(&bytes, marker), "plaintext marker found in {}", f.display());
        }
        for f in srv.files() {
            assert!(!contains(&std::fs::read(&f).unwrap(), marker), "plaintext marker found in {}", f.display());
        }
    }
}
