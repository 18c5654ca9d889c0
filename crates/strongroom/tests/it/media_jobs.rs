//! Fair, safe media jobs: lanes and fairness, output leases against the sweep, the loopback
//! receiver under a burst of tiny segments, caps on implausible files, typed payloads.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;
use crate::video::{
    SOURCE_FPS, ffprobe_stream, make_video, playback, processed, sibling, test_video, upload_as,
};

/// `seconds` of silent testsrc of `size` (e.g. `640x360`) at 25 fps, H.264 in MP4.
fn small_video(seconds: u32, size: &str) -> Vec<u8> {
    silent_video(seconds, size, 25)
}

/// `seconds` of 64x64 testsrc at 1 fps, H.264 in MP4: hundreds of tiny segments.
fn low_frame_rate_video(seconds: u32) -> Vec<u8> {
    silent_video(seconds, "64x64", 1)
}

/// `seconds` of silent testsrc of `size` at `fps` frames a second, H.264 in MP4.
fn silent_video(seconds: u32, size: &str, fps: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate={fps}:duration={seconds}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(&path).unwrap()
}

/// About 15 KiB of Matroska claiming two hours: three 320x240 pictures an hour apart in a
/// stream that says 25 fps (transcoded as stated, they would be repeated 180 000 times).
fn tiny_file_claiming_hours() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.mkv");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ])
        .args([
            "-frames:v",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-g", "1", "-bsf:v", "setts=ts=N*3600000"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(&path).unwrap()
}

/// The jobs row about `subject` (an asset id): (status, last error).
async fn job_about(srv: &TestServer, subject: &str) -> (String, Option<String>) {
    use sqlx::Row;
    let mut conn = srv.db_conn().await;
    let row = sqlx::query("SELECT id, status, last_error FROM jobs WHERE subject = $1")
        .bind(subject)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let (id, status): (String, String) =
        (row.try_get("id").unwrap(), row.try_get("status").unwrap());
    let stored: Option<String> = row.try_get("last_error").unwrap();
    // The error is sealed in the row: a failed job's reads back through `jobs status`.
    let error = match (&stored, status.as_str()) {
        (Some(sealed), "failed") => {
            assert!(
                sealed.starts_with("sr1:"),
                "a job error is stored in the clear: {sealed}"
            );
            let report = srv.run_json(&["jobs", "status", "--json"]);
            let failure = report["recent_failures"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["id"] == id.as_str())
                .cloned();
            failure.map(|f| f["error"].as_str().unwrap().to_owned())
        }
        _ => stored,
    };
    (status, error)
}

/// How many objects are still leased to job attempts.
async fn leased_outputs(srv: &TestServer) -> i64 {
    use sqlx::Row;
    let mut conn = srv.db_conn().await;
    sqlx::query("SELECT COUNT(*) AS n FROM job_outputs")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// Fetches every segment of every variant of a ready video through a playback; returns the
/// number of segments per rung, and asserts each answered 200 with bytes.
pub(crate) async fn fetch_every_segment(
    srv: &TestServer,
    key: &str,
    id: &str,
) -> Vec<(String, usize)> {
    let pb = playback(srv, key, id, 600).await;
    let url = pb["url"].as_str().unwrap().to_owned();
    let master = srv
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut counts = Vec::new();
    for variant in master.lines().filter(|l| l.ends_with("index.m3u8")) {
        let playlist = srv
            .client
            .get(sibling(&url, variant))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let rung = variant.trim_end_matches("/index.m3u8");
        let segments: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".ts")).collect();
        for seg in &segments {
            let res = srv
                .client
                .get(sibling(&url, &format!("{rung}/{seg}")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{rung}/{seg}");
            assert!(!res.bytes().await.unwrap().is_empty(), "{rung}/{seg}");
        }
        counts.push((rung.to_owned(), segments.len()));
    }
    counts
}

both_backends! {
    async fn every_segment_of_a_long_low_frame_rate_video_is_stored(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let key = boot.api_key.as_str();
        let space = srv.create_space(key, &boot.org_id, "videos").await;
        // Ten minutes at 1 fps: 150 four-second segments per rung, made far faster than they
        // are stored, each uploaded by ffmpeg on a connection of its own.
        let up = upload_as(&srv, key, &space, "slides.mp4", "video/mp4", low_frame_rate_video(600)).await;
        let id = up["id"].as_str().unwrap();
        let asset = processed(&srv, key, id).await;
        assert_eq!(asset["status"], "ready", "{asset}");
        assert!((asset["media"]["duration_seconds"].as_f64().unwrap() - 600.0).abs() < 1.0, "{asset}");
        let counts = fetch_every_segment(&srv, key, id).await;
        assert_eq!(counts, vec![("360p".to_owned(), 150), ("720p".to_owned(), 150)]);
        // A real player plays a whole rung: every picture, the whole ten minutes.
        let pb = playback(&srv, key, id, 600).await;
        let out = ffprobe_stream(&sibling(pb["url"].as_str().unwrap(), "360p/index.m3u8"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
        let frames: u64 = probe["streams"][0]["nb_read_frames"].as_str().unwrap().parse().unwrap();
        assert_eq!(frames, 600);
        assert_eq!(leased_outputs(&srv).await, 0, "committed outputs are blobs, not leases");
    }

    async fn the_orphan_sweep_never_takes_a_running_jobs_outputs(b: Backend) {
        // A grace shorter than the job: with a 30 s clip cut into 1 s segments, outputs the job
        // stored early are past it while the job still runs, however fast the machine.
        let grace = Duration::from_secs(1);
        let Some(srv) = TestServer::start_with(b, |s| {
            s.instance.service.orphan_grace = grace;
            if let Some(m) = s.instance.service.media.as_mut() {
                m.hls.segment_seconds = 1;
            }
        }).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let key = boot.api_key.as_str();
        let space = srv.create_space(key, &boot.org_id, "videos").await;
        let up = upload_as(&srv, key, &space, "clip.mp4", "video/mp4", small_video(30, "640x360")).await;
        let id = up["id"].as_str().unwrap();
        // Sweep again and again while the job stores its stills and segments.
        let (mut sweeps_with_old_outputs, deadline) = (0, Instant::now() + Duration::from_secs(180));
        loop {
            let a = get_json(srv.req(Method::GET, &format!("/api/v1/assets/{id}"), Some(key))).await;
            if a["status"] != "processing" {
                break;
            }
            assert!(Instant::now() < deadline, "still processing: {a}");
            // Objects older than the grace period besides the upload itself: outputs the sweep
            // would take if they were not leased to the job.
            let old = srv.object_files().iter().filter(|f| {
                f.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|e| e > grace))
            }).count();
            let removed = srv.service.ops.sweep_orphans().await.unwrap();
            assert_eq!(removed, 0, "the sweep removed a running job's outputs");
            if old > 1 {
                sweeps_with_old_outputs += 1;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(sweeps_with_old_outputs > 0, "no sweep ran while outputs older than the grace period existed");
        let asset = processed(&srv, key, id).await;
        assert_eq!(asset["status"], "ready", "{asset}");
        // Nothing was lost: every segment is served, the stills too, and a player gets every frame.
        let counts = fetch_every_segment(&srv, key, id).await;
        assert_eq!(counts, vec![("360p".to_owned(), 30), ("720p".to_owned(), 30)]);
        for still in ["thumbnail", "preview"] {
            let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/renditions/{still}"), Some(key)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{still}");
        }
        let pb = playback(&srv, key, id, 600).await;
        let out = ffprobe_stream(pb["url"].as_str().unwrap());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
        let frames: u64 = probe["streams"][0]["nb_read_frames"].as_str().unwrap().parse().unwrap();
        assert!(frames.abs_diff(30 * 25) <= 1, "{frames} frames");
        // Once committed, the outputs are ordinary blobs: a later sweep leaves them too.
        tokio::time::sleep(grace).await;
        assert_eq!(srv.service.ops.sweep_orphans().await.unwrap(), 0);
        assert_eq!(fetch_every_segment(&srv, key, id).await, counts);
    }

    async fn another_organizations_clip_and_mail_do_not_wait_for_a_long_transcode(b: Backend) {
        let (smtp, _) = mail_sink();
        let Some(srv) = TestServer::start_with(b, |s| {
            let mailer = strongroom::mail::SmtpMailer::new(&smtp, "Strongroom <noreply@strongroom.test>").unwrap();
            s.instance.service.mailer = Some(std::sync::Arc::new(mailer));
            // A slow x264 preset makes the long job take minutes whatever the machine; the short
            // clips are tiny. Default workers: 1 mail, 2 media, 1 media job per organization.
            if let Some(m) = s.instance.service.media.as_mut() {
                m.hls.x264_preset = "slow".into();
            }
        }).await else { return };
        let acme = srv.bootstrap("owner@acme.example", "acme");
        let globex = srv.bootstrap("owner@globex.example", "globex");
        let acme_space = srv.create_space(&acme.api_key, &acme.org_id, "films").await;
        let globex_space = srv.create_space(&globex.api_key, &globex.org_id, "clips").await;
        // Acme's long transcode starts first, and Acme queues another behind it.
        let long = upload_as(&srv, &acme.api_key, &acme_space, "long.mp4", "video/mp4", make_video(20, SOURCE_FPS)).await;
        let long_id = long["id"].as_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while job_about(&srv, long_id).await.0 != "running" {
            assert!(Instant::now() < deadline, "the long job never started");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let second = upload_as(&srv, &acme.api_key, &acme_space, "second.mp4", "video/mp4", small_video(1, "160x120")).await;
        // Globex's short clip, and a mail, while Acme's job runs.
        let short = upload_as(&srv, &globex.api_key, &globex_space, "short.mp4", "video/mp4", small_video(1, "160x120")).await;
        let invitee = unique_email("invitee");
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{}/invitations", globex.org_id), Some(&globex.api_key))
            .json(&json!({"email": invitee, "role": "viewer"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let started = Instant::now();
        let mail = wait_for_mail(&invitee, "You are invited").await;
        assert!(mail.body.contains("/invite#"));
        let done = processed(&srv, &globex.api_key, short["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "ready", "{done}");
        let waited = started.elapsed();
        // All the while, Acme's long job was still running, and Acme's second one waited for
        // it (one running media job per organization) although a worker was free.
        let long_now = get_json(srv.req(Method::GET, &format!("/api/v1/assets/{long_id}"), Some(&acme.api_key))).await;
        assert_eq!(long_now["status"], "processing", "the long job ended too soon to tell ({waited:?})");
        assert_eq!(job_about(&srv, long_id).await.0, "running");
        assert_eq!(job_about(&srv, second["id"].as_str().unwrap()).await.0, "queued");
    }

    async fn a_stopping_node_releases_its_running_job_to_be_taken_over_at_once(b: Backend) {
        let Some(mut srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let key = boot.api_key.clone();
        let space = srv.create_space(&key, &boot.org_id, "videos").await;
        let clip = upload_as(&srv, &key, &space, "clip.mp4", "video/mp4", make_video(6, SOURCE_FPS)).await;
        let id = clip["id"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        while job_about(&srv, &id).await.0 != "running" {
            assert!(Instant::now() < deadline, "the job never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The node stops mid-transcode (SIGTERM's path: drain, abort the workers, release).
        srv.restart().await;
        // The lease ended at the stop: the job was due at once, not 60 s later, and the
        // restarted node finished it on a second attempt.
        let done = processed(&srv, &key, &id).await;
        assert_eq!(done["status"], "ready", "{done}");
        use sqlx::Row;
        let mut conn = srv.db_conn().await;
        let row = sqlx::query("SELECT attempts, created_at, updated_at FROM jobs WHERE subject = $1").bind(&id).fetch_one(&mut conn).await.unwrap();
        assert_eq!(row.get::<i64, _>("attempts"), 2, "taken over after the stop");
        let took = row.get::<i64, _>("updated_at") - row.get::<i64, _>("created_at");
        assert!(took < 55_000, "finished {took} ms after it was queued: the takeover did not wait for the lease");
    }

    async fn a_tiny_file_claiming_hours_fails_at_once_and_leaves_nothing(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let key = boot.api_key.as_str();
        let space = srv.create_space(key, &boot.org_id, "videos").await;
        let bytes = tiny_file_claiming_hours();
        assert!(bytes.len() < 20_000, "{} bytes", bytes.len());
        let started = Instant::now();
        let up = upload_as(&srv, key, &space, "sparse.mkv", "video/x-matroska", bytes).await;
        let id = up["id"].as_str().unwrap();
        let a = processed(&srv, key, id).await;
        assert_eq!(a["status"], "failed", "{a}");
        let error = a["error"].as_str().unwrap();
        assert!(error.starts_with("the file claims 2 h 0 min of video but holds only "), "{error}");
        assert!(error.contains(" KiB: at most "), "{error}");
        assert!(error.ends_with("refused as implausible"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
        // Its stills were stored before the claim was judged: removed with the failure.
        assert_eq!(a["renditions"], json!([]));
        assert_eq!(srv.object_files().len(), 1, "only the upload itself remains");
        assert_eq!(leased_outputs(&srv).await, 0);
        let (status, last_error) = job_about(&srv, id).await;
        assert_eq!((status.as_str(), last_error.as_deref()), ("failed", Some(error)));
        // The original is still there, as uploaded.
        assert_eq!(download(&srv, key, id).await.len() as u64, up["size"].as_u64().unwrap());
    }

    async fn a_job_past_its_output_bound_fails_and_its_outputs_are_removed(b: Backend) {
        // The bound is 2x the source's size with no allowance, so the test clip's HLS (about 10x
        // its size) crosses it half way through.
        let Some(srv) = TestServer::start_with(b, |s| {
            if let Some(m) = s.instance.service.media.as_mut() {
                m.limits.output_ratio = 2;
                m.limits.output_allowance_bytes = 0;
            }
        }).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let key = boot.api_key.as_str();
        let space = srv.create_space(key, &boot.org_id, "videos").await;
        let up = upload_as(&srv, key, &space, "clip.mp4", "video/mp4", test_video()).await;
        let id = up["id"].as_str().unwrap();
        let a = processed(&srv, key, id).await;
        assert_eq!(a["status"], "failed", "{a}");
        let error = a["error"].as_str().unwrap();
        assert!(error.starts_with("processing produced more than "), "{error}");
        assert!(error.ends_with("refused as implausible"), "{error}");
        assert_eq!(a["renditions"], json!([]));
        // Stills and the segments stored before the bound was crossed are gone with the job.
        assert_eq!(srv.object_files().len(), 1, "only the upload itself remains");
        assert_eq!(leased_outputs(&srv).await, 0);
        assert_eq!(job_about(&srv, id).await.0, "failed");
    }

    async fn jobs_of_an_unknown_kind_or_with_an_unreadable_payload_fail_clearly(b: Backend) {
        use strongroom_service::Lane;
        // No media worker runs on its own here: the test runs the media job itself, after
        // breaking its payload.
        let Some(srv) = TestServer::start_with(b, |s| s.instance.service.jobs.media_workers = 0).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let key = boot.api_key.as_str();
        let space = srv.create_space(key, &boot.org_id, "videos").await;
        let up = upload_as(&srv, key, &space, "clip.mp4", "video/mp4", test_video()).await;
        let id = up["id"].as_str().unwrap();
        let mut conn = srv.db_conn().await;
        let broken = sqlx::query("UPDATE jobs SET payload = $1 WHERE subject = $2")
            .bind(b"not what was sealed".to_vec())
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(broken.rows_affected(), 1);
        // A row of a kind this server does not know, as a newer release might leave behind.
        let odd = strongroom_domain::JobId::generate().to_string();
        sqlx::query("INSERT INTO jobs (id, org_id, kind, subject, payload, status, attempts, max_attempts, \
                     run_after, progress, created_at, updated_at) VALUES ($1, $2, 'frobnicate', NULL, $3, 'queued', 0, 5, 0, 0, 0, 0)")
            .bind(odd.as_str())
            .bind(boot.org_id.as_str())
            .bind(vec![1u8, 2, 3])
            .execute(&mut conn)
            .await
            .unwrap();

        // The media lane runs the broken job: it fails for good, and the asset says why
        // instead of staying "processing".
        assert!(srv.service.jobs.run_one(Lane::Media, "test-media-worker").await.unwrap());
        let a = get_json(srv.req(Method::GET, &format!("/api/v1/assets/{id}"), Some(key))).await;
        assert_eq!((a["status"].as_str(), a["error"].as_str()), (Some("failed"), Some("the payload failed its integrity check")), "{a}");
        assert_eq!(job_about(&srv, id).await, ("failed".to_owned(), Some("the payload failed its integrity check".to_owned())));
        // The unknown kind is not the media lane's; the mail lane's worker fails it, naming it.
        assert!(!srv.service.jobs.run_one(Lane::Media, "test-media-worker").await.unwrap());
        use sqlx::Row;
        let deadline = Instant::now() + Duration::from_secs(30);
        let (status, error) = loop {
            let row = sqlx::query("SELECT status, last_error FROM jobs WHERE id = $1").bind(odd.as_str()).fetch_one(&mut conn).await.unwrap();
            let status: String = row.try_get("status").unwrap();
            if status != "queued" && status != "running" {
                break (status, row.try_get::<Option<String>, _>("last_error").unwrap());
            }
            assert!(Instant::now() < deadline, "the unknown job was never run");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(status, "failed");
        assert!(error.is_some_and(|e| e.starts_with("sr1:")), "a job error is stored in the clear");
        let report = srv.run_json(&["jobs", "status", "--json"]);
        let named = report["recent_failures"].as_array().unwrap().iter().find(|f| f["id"] == odd.as_str()).map(|f| f["error"].clone());
        assert_eq!(named, Some(json!("unknown job kind \"frobnicate\": this server runs mail, media, region_move")), "{report}");
        let kinds: Vec<&str> = report["recent_failures"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"frobnicate") && kinds.contains(&"media"), "{report}");
        // The workers carry on: a good upload is processed by the media lane as before.
        let good = upload_as(&srv, key, &space, "good.mp4", "video/mp4", test_video()).await;
        let good_id = good["id"].as_str().unwrap();
        assert!(srv.service.jobs.run_one(Lane::Media, "test-media-worker").await.unwrap());
        assert_eq!(get_json(srv.req(Method::GET, &format!("/api/v1/assets/{good_id}"), Some(key))).await["status"], "ready");
    }
}
