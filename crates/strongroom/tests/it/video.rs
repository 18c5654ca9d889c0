//! Media over HTTPS with real clients: uploads processed by ffmpeg on the job queue into image
//! renditions and an AES-128 encrypted HLS ladder; per-view playback tokens; ffmpeg itself as the
//! HLS client (duration and frame count match the source); a segment alone does not decode; a
//! revoked or expired token stops key delivery; hostile files fail cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

pub(crate) const SOURCE_SECONDS: u32 = 4;
pub(crate) const SOURCE_FPS: u32 = 25;

/// A 1280x720 H.264/AAC MP4 of `seconds` at `fps`, made by ffmpeg's test sources (in a temp
/// dir: test data).
pub(crate) fn make_video(seconds: u32, fps: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("source.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc=duration={seconds}:size=1280x720:rate={fps}"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-shortest"])
        .arg(&path)
        .status()
        .expect("ffmpeg is installed by scripts/test.sh");
    assert!(status.success());
    std::fs::read(&path).unwrap()
}

/// The standard test clip: SOURCE_SECONDS at SOURCE_FPS.
pub(crate) fn test_video() -> Vec<u8> {
    make_video(SOURCE_SECONDS, SOURCE_FPS)
}

/// An 800x600 PNG.
pub(crate) fn test_image() -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=800x600:rate=1",
            "-frames:v",
            "1",
        ])
        .args(["-f", "image2pipe", "-c:v", "png", "pipe:1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

pub(crate) async fn upload_as(
    srv: &TestServer,
    key: &str,
    space: &str,
    name: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> Value {
    let res = srv
        .req(
            Method::POST,
            &format!("/api/v1/spaces/{space}/assets?filename={name}"),
            Some(key),
        )
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::CREATED).await
}

/// Polls the asset until processing ends (bounded), and returns its metadata.
pub(crate) async fn processed(srv: &TestServer, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let a = get_json(srv.req(Method::GET, &format!("/api/v1/assets/{id}"), Some(key))).await;
        if a["status"] != "processing" {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "still processing after 180 s: {a}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(crate) async fn playback(srv: &TestServer, key: &str, asset: &str, expires_in: u64) -> Value {
    let res = srv
        .req(
            Method::POST,
            &format!("/api/v1/assets/{asset}/playback"),
            Some(key),
        )
        .json(&json!({"expires_in": expires_in}))
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::CREATED).await
}

/// `url` with its last path segment replaced by `file`.
pub(crate) fn sibling(url: &str, file: &str) -> String {
    let base = url.rsplit_once('/').unwrap().0;
    format!("{base}/{file}")
}

/// ffprobe as an HLS client: frames and duration of the first video stream it plays.
pub(crate) fn ffprobe_stream(url: &str) -> std::process::Output {
    Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames:format=duration",
            "-of",
            "json",
        ])
        .arg(url)
        .output()
        .unwrap()
}

/// ffprobe on bytes given on stdin: how many video frames decode.
fn frames_in(bytes: &[u8]) -> Option<u64> {
    use std::io::Write;
    let mut child = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            "-i",
            "pipe:0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(bytes);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

both_backends! {
    async fn a_video_becomes_an_encrypted_hls_ladder_that_plays(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let key = boot.api_key.as_str();
        let space = srv.create_space(key, &boot.org_id, "videos").await;
        let up = upload_as(&srv, key, &space, "clip.mp4", "video/mp4", test_video()).await;
        assert_eq!(up["status"], "processing", "{up}");
        let id = up["id"].as_str().unwrap();
        let asset = processed(&srv, key, id).await;
        assert_eq!(asset["status"], "ready", "{asset}");
        let names: Vec<&str> = asset["renditions"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        for want in ["thumbnail", "preview", "hls/360p", "hls/720p"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let hd = asset["renditions"].as_array().unwrap().iter().find(|r| r["name"] == "hls/720p").unwrap();
        assert_eq!((hd["width"].as_u64(), hd["height"].as_u64()), (Some(1280), Some(720)));
        assert!((asset["media"]["duration_seconds"].as_f64().unwrap() - f64::from(SOURCE_SECONDS)).abs() < 0.2, "{asset}");

        let pb = playback(&srv, key, id, 600).await;
        let url = pb["url"].as_str().unwrap().to_owned();
        assert!(url.ends_with("/master.m3u8") && url.contains("/hls/"), "{url}");
        let master = srv.client.get(&url).send().await.unwrap();
        assert_eq!(master.headers()["content-type"], "application/vnd.apple.mpegurl");
        assert_eq!(master.headers()["cache-control"], "no-store");
        let master = master.text().await.unwrap();
        assert!(master.contains("360p/index.m3u8") && master.contains("720p/index.m3u8"), "{master}");
        let variant = srv.client.get(sibling(&url, "720p/index.m3u8")).send().await.unwrap().text().await.unwrap();
        assert!(variant.contains("#EXT-X-KEY:METHOD=AES-128,URI=\"../key\""), "{variant}");
        assert!(!variant.contains("http"), "playlists hold relative URIs only: {variant}");

        // A real HLS client over HTTPS plays the whole stream: same frames, same duration.
        let out = ffprobe_stream(&url);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
        let frames: u64 = probe["streams"][0]["nb_read_frames"].as_str().unwrap().parse().unwrap();
        let expected = u64::from(SOURCE_SECONDS * SOURCE_FPS);
        assert!(frames.abs_diff(expected) <= 1, "{frames} frames, expected {expected}");
        let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!((duration - f64::from(SOURCE_SECONDS)).abs() < 0.3, "duration {duration}");

        // A segment fetched alone is ciphertext: it does not decode.
        let seg_name = variant.lines().find(|l| l.ends_with(".ts")).unwrap();
        let seg = srv.client.get(sibling(&url, &format!("720p/{seg_name}"))).send().await.unwrap();
        assert_eq!(seg.status(), StatusCode::OK);
        let seg = seg.bytes().await.unwrap();
        assert!(seg.len() > 1000);
        assert_ne!(seg[0], 0x47, "an MPEG-TS sync byte: the segment is not encrypted");
        assert!(frames_in(&seg).unwrap_or(0) == 0, "an encrypted segment decoded");

        // The view is audited once, however many files the player fetched.
        let audit = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=1000", boot.org_id), Some(key))).await;
        let views = audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "playback.view").count();
        assert_eq!(views, 1);

        // Revoking the playback stops key delivery at once, and with it playback.
        let key_url = sibling(&url, "key");
        let k = srv.client.get(&key_url).send().await.unwrap();
        assert_eq!(k.status(), StatusCode::OK);
        assert_eq!(k.headers()["cache-control"], "no-store");
        assert_eq!(k.bytes().await.unwrap().len(), 16);
        let res = srv.req(Method::DELETE, &format!("/api/v1/playback/{}", pb["id"].as_str().unwrap()), Some(key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(srv.client.get(&key_url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        assert_eq!(srv.client.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        assert!(!ffprobe_stream(&url).status.success(), "a revoked token still plays");

        // An expired token stops too; a tampered one never worked.
        let short = playback(&srv, key, id, 1).await;
        let short_key = sibling(short["url"].as_str().unwrap(), "key");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(srv.client.get(&short_key).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        let fresh = playback(&srv, key, id, 600).await;
        let fresh_url = fresh["url"].as_str().unwrap();
        let tampered = fresh_url.replacen("/hls/", "/hls/x", 1);
        assert_eq!(srv.client.get(sibling(&tampered, "key")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        for bad in ["../key", "720p/../../key", "thumbnail", "720p/seg99999.ts"] {
            let res = srv.client.get(sibling(fresh_url, bad)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{bad}");
        }
    }

    async fn images_get_renditions_and_hostile_files_fail_cleanly(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let key = boot.api_key.as_str();
        let space = srv.create_space(key, &boot.org_id, "pics").await;
        let img = upload_as(&srv, key, &space, "photo.png", "image/png", test_image()).await;
        let garbage = upload_as(&srv, key, &space, "evil.mp4", "video/mp4", pattern(300_000, 7)).await;
        let doc = upload_as(&srv, key, &space, "notes.txt", "text/plain", b"just text".to_vec()).await;

        let img_id = img["id"].as_str().unwrap();
        let a = processed(&srv, key, img_id).await;
        assert_eq!(a["status"], "ready", "{a}");
        let thumb = a["renditions"].as_array().unwrap().iter().find(|r| r["name"] == "thumbnail").unwrap();
        assert_eq!((thumb["width"].as_u64(), thumb["height"].as_u64()), (Some(320), Some(240)));
        let preview = a["renditions"].as_array().unwrap().iter().find(|r| r["name"] == "preview").unwrap();
        assert_eq!((preview["width"].as_u64(), preview["height"].as_u64()), (Some(800), Some(600)), "never upscaled");
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{img_id}/renditions/thumbnail"), Some(key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "image/jpeg");
        let jpeg = res.bytes().await.unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        assert_eq!(jpeg.len() as u64, thumb["size"].as_u64().unwrap());
        // A link can hand out the thumbnail instead of the original.
        let link = srv.req(Method::POST, &format!("/api/v1/assets/{img_id}/links"), Some(key)).json(&json!({"expires_in": 600, "rendition": "thumbnail"})).send().await.unwrap();
        let link = expect_json(link, StatusCode::CREATED).await;
        assert_eq!(link["rendition"], "thumbnail");
        let via_link = srv.client.get(link["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(via_link.headers()["content-type"], "image/jpeg");
        assert_eq!(via_link.bytes().await.unwrap(), jpeg);
        let res = srv.req(Method::POST, &format!("/api/v1/assets/{img_id}/links"), Some(key)).json(&json!({"expires_in": 600, "rendition": "poster"})).send().await.unwrap();
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{img_id}/renditions/nope"), Some(key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        // A picture has no stream to play.
        let res = srv.req(Method::POST, &format!("/api/v1/assets/{img_id}/playback"), Some(key)).json(&json!({"expires_in": 60})).send().await.unwrap();
        expect_problem(res, StatusCode::CONFLICT, "conflict").await;

        // Garbage claiming to be a video: failed, with the reason, and the server carries on.
        let g = processed(&srv, key, garbage["id"].as_str().unwrap()).await;
        assert_eq!(g["status"], "failed", "{g}");
        assert!(g["error"].as_str().unwrap().contains("not a media file"), "{g}");
        assert_eq!(g["renditions"], json!([]));
        // The operator sees it too: the failed job, its kind and the reason.
        let report = srv.run_json(&["jobs", "status", "--json"]);
        let failure = &report["recent_failures"][0];
        assert_eq!((failure["kind"].as_str(), failure["attempts"].as_u64()), (Some("media"), Some(1)), "{report}");
        assert_eq!(failure["subject"], garbage["id"]);
        assert!(failure["error"].as_str().unwrap().contains("not a media file"), "{report}");
        // Not media at all: nothing to process.
        let d = get_json(srv.req(Method::GET, &format!("/api/v1/assets/{}", doc["id"].as_str().unwrap()), Some(key))).await;
        assert_eq!((d["status"].as_str(), d["renditions"].as_array().map(Vec::len)), (Some("ready"), Some(0)));

        // Purging the asset shreds its renditions too (a delete to the trash keeps all three).
        let before = srv.object_files().len();
        let res = srv.req(Method::DELETE, &format!("/api/v1/assets/{img_id}"), Some(key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(srv.object_files().len(), before, "the trash keeps the original and its renditions");
        let res = srv.req(Method::DELETE, &format!("/api/v1/assets/{img_id}?purge=true"), Some(key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let after = srv.object_files().len();
        assert_eq!(before - after, 3, "the original and both renditions are gone");
    }

    async fn playback_is_authorized_like_the_asset(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let other = srv.bootstrap("rival@example.com", "rival");
        let key = boot.api_key.as_str();
        let org = boot.org_id.as_str();
        let space = srv.create_space(key, org, "videos").await;
        let elsewhere = srv.create_space(key, org, "elsewhere").await;
        let up = upload_as(&srv, key, &space, "clip.mp4", "video/mp4", test_video()).await;
        let id = up["id"].as_str().unwrap();
        let start = |k: &str, expires_in: u64| {
            srv.req(Method::POST, &format!("/api/v1/assets/{id}/playback"), Some(k)).json(&json!({"expires_in": expires_in})).send()
        };
        // While processing (a 4 s clip takes far longer than this request to transcode): a clear
        // refusal, not a broken stream.
        assert_eq!(up["status"], "processing", "{up}");
        let early = expect_problem(start(key, 60).await.unwrap(), StatusCode::CONFLICT, "conflict").await;
        assert!(early["detail"].as_str().unwrap().contains("still processing"), "{early}");
        assert_eq!(processed(&srv, key, id).await["status"], "ready");
        let pb = playback(&srv, key, id, 600).await;
        let pb_id = pb["id"].as_str().unwrap().to_owned();
        let master = pb["url"].as_str().unwrap().to_owned();
        let revoke = |k: &str| srv.req(Method::DELETE, &format!("/api/v1/playback/{pb_id}"), Some(k)).send();

        // Another organization sees neither the asset nor the playback.
        expect_problem(start(&other.api_key, 60).await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
        expect_problem(revoke(&other.api_key).await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
        // Inside the organization, a caller who cannot reach the asset's space gets the same
        // answer: a collaborator with no grant, and a key limited to another space.
        let (_, collaborator) = srv.create_key(org, "collaborator");
        expect_problem(start(&collaborator, 60).await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
        let limited = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/api-keys"), Some(key))
            .json(&json!({"name": "elsewhere only", "role": "viewer", "spaces": [elsewhere]})).send().await.unwrap();
        let limited = expect_json(limited, StatusCode::CREATED).await["api_key"].as_str().unwrap().to_owned();
        expect_problem(start(&limited, 60).await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
        expect_problem(revoke(&limited).await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
        // A role that sees the space but may not read its assets: forbidden.
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/roles"), Some(key))
            .json(&json!({"name": "lister", "permissions": ["space:read"]})).send().await.unwrap();
        expect_json(res, StatusCode::CREATED).await;
        let lister = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/api-keys"), Some(key))
            .json(&json!({"name": "lister", "role": "lister"})).send().await.unwrap();
        let lister = expect_json(lister, StatusCode::CREATED).await["api_key"].as_str().unwrap().to_owned();
        expect_problem(start(&lister, 60).await.unwrap(), StatusCode::FORBIDDEN, "forbidden").await;

        // A viewer may watch (and the token plays); a contributor may not revoke another's view.
        let (_, viewer) = srv.create_key(org, "viewer");
        let watched = playback(&srv, &viewer, id, 60).await;
        assert_eq!(srv.client.get(watched["url"].as_str().unwrap()).send().await.unwrap().status(), StatusCode::OK);
        let (_, contributor) = srv.create_key(org, "contributor");
        expect_problem(revoke(&contributor).await.unwrap(), StatusCode::FORBIDDEN, "forbidden").await;
        // None of the refusals touched the playback: it still plays, until an editor revokes it.
        assert_eq!(srv.client.get(&master).send().await.unwrap().status(), StatusCode::OK);
        let (_, editor) = srv.create_key(org, "editor");
        // A stream stops with its asset: in the trash, its files are gone; restored, they play.
        let watched = watched["url"].as_str().unwrap();
        assert_eq!(status(srv.req(Method::DELETE, &format!("/api/v1/assets/{id}"), Some(&editor))).await, StatusCode::NO_CONTENT);
        for url in [watched.to_owned(), watched.replace("master.m3u8", "key")] {
            assert_eq!(srv.client.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND, "{url}");
        }
        expect_problem(start(key, 60).await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
        assert_eq!(status(srv.req(Method::POST, &format!("/api/v1/assets/{id}/restore"), Some(&editor))).await, StatusCode::OK);
        assert_eq!(srv.client.get(watched).send().await.unwrap().status(), StatusCode::OK);
        assert_eq!(revoke(&editor).await.unwrap().status(), StatusCode::NO_CONTENT);
        assert_eq!(srv.client.get(&master).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        // Refused requests made no playback: the audit trail holds exactly the two that were made.
        let audit = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit?limit=1000"), Some(key))).await;
        let created = audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "playback.create").count();
        assert_eq!(created, 2, "{audit}");
        // Lifetimes are bounded like links'.
        for bad in [0u64, 10_000_000] {
            expect_problem(start(key, bad).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        }
    }
}
