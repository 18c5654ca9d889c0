//! Seeds a data directory with N small assets through the real use cases, for
//! `bench/rotation.sh` (key rotation cost grows with the number of data keys, not their size).
//!
//! `cargo run --release -p strongroom --example seed -- DATA_DIR N`
//! (`STRONGROOM_DATABASE_URL` selects PostgreSQL, as for the server.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use strongroom::boot::{self, Create, InstanceSettings};
use strongroom_domain::{Email, Filename, Name};
use strongroom_service::{NewUpload, RequestMeta, ServiceConfig, perm};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let data_dir = PathBuf::from(args.next().expect("usage: seed DATA_DIR N"));
    let n: usize = args.next().expect("usage: seed DATA_DIR N").parse()?;
    let settings = InstanceSettings {
        data_dir,
        database_url: std::env::var("STRONGROOM_DATABASE_URL").ok(),
        master_key_file: None,
        master_key_hex: None,
        storage: Default::default(),
        service: ServiceConfig::default(),
    };
    let inst = boot::open(&settings, Create::IfMissing).await?;
    let svc = inst.service;
    let boot = svc
        .ops
        .bootstrap(
            Email::parse("seed@example.com")?,
            Name::parse("seed")?,
            None,
            None,
        )
        .await?;
    let p = svc
        .authz
        .authenticate_api_key(&boot.api_key, RequestMeta::default())
        .await?;
    let space = svc
        .content
        .create_space(
            &svc.authz
                .authorize_org::<perm::SpaceCreate>(&p, &boot.org_id)?,
            Name::parse("seed")?,
        )
        .await?;
    let authz = svc
        .authz
        .authorize_space::<perm::AssetCreate>(&p, &space.id)
        .await?;
    let done = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    futures_util::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let (svc, authz, done) = (&svc, &authz, &done);
            async move {
                let upload = NewUpload {
                    filename: Filename::parse(&format!("f{i}")).unwrap(),
                    content_type: "application/octet-stream".into(),
                    size: None,
                };
                let body = futures_util::stream::iter([Ok::<_, Infallible>(Bytes::from(format!(
                    "asset {i}"
                )))]);
                svc.content.upload(authz, upload, body).await.unwrap();
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 10_000 == 0 {
                    eprintln!(
                        "seeded {d}/{n} ({:.0}/s)",
                        d as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        })
        .await;
    eprintln!(
        "seeded {n} assets in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
