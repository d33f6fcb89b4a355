//! Tests of `ioband_perf` and `ioband_bench`'s pieces (the tool, not the speed): option,
//! jobs-file and events-file errors through the real binary, the JSON output schema of a
//! tiny run, jobs that start late (`startdelay`), the control schedule (`--events`), the
//! flush workload and the model bdev's flush latency, the passthru vbdev and its RPCs, and
//! the SVG writer's output parsed back.

mod common;

use std::path::PathBuf;
use std::process::Command;

use bdev_ioband_host::app::App;
use bdev_ioband_host::perf::svg::{bar_chart, line_chart, Series};
use bdev_ioband_host::rpc::config::{bdev_config, load_config};
use bdev_ioband_host::rpc::Methods;
use common::{Client, Rig};
use serde_json::{json, Value};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ioband_perf_test_{}_{tag}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

const CONFIG: &str = r#"{"subsystems":[{"subsystem":"bdev","config":[
 {"method":"bdev_null_create","params":{"name":"Null0","num_blocks":65536,"block_size":4096}},
 {"method":"bdev_null_create","params":{"name":"Null1","num_blocks":65536,"block_size":4096}},
 {"method":"bdev_passthru_create","params":{"name":"PT1","base_bdev_name":"Null1"}},
 {"method":"bdev_ioband_create","params":{"name":"band0","base_bdev_name":"Null0","share":"s0","policy":"weight"}},
 {"method":"bdev_ioband_set_settings","params":{"name":"band0","group":"tag:1","value":300}},
 {"method":"bdev_ioband_set_settings","params":{"name":"band0","group":"tag:2","value":100}}
]}]}"#;

fn perf(args: &[&str], dir: &PathBuf) -> (i32, String, String) {
    perf_with(CONFIG, args, dir)
}

/// `ioband_perf --json <config> args...` in `dir`: (exit code, stdout, stderr).
fn perf_with(config: &str, args: &[&str], dir: &PathBuf) -> (i32, String, String) {
    let cfg = dir.join("cfg.json");
    std::fs::write(&cfg, config).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_ioband_perf"))
        .current_dir(dir)
        .arg("--json")
        .arg(&cfg)
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn jobs_file_errors_name_file_and_line_and_fail_before_io() {
    let dir = tmpdir("jobs");
    let cases: &[(&str, &str)] = &[
        (
            "[a]\nfilename=band0\nqueue=4\n",
            "j.ini:3: queue: unknown key 'queue'",
        ),
        (
            "[a]\nfilename=band0\nbs=4z\n",
            "j.ini:3: bs: '4z' is not a size",
        ),
        (
            "[global]\nbs=4k\n[a]\ngroup=tag:1\n",
            "j.ini:3: job [a] has no filename",
        ),
        (
            "[a]\nbs=4k\nfilename=NoSuch\n",
            "j.ini:3: unknown bdev 'NoSuch' in job [a]",
        ),
        (
            "[a]\nfilename=band0\nbs=1000\n",
            "j.ini:3: I/O size 1000 of job [a] is not a multiple",
        ),
        (
            "[a]\nfilename=band0\ncpumask=0x4\n",
            "j.ini:1: cpumask 0x4 of job [a] selects no core",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(dir.join("j.ini"), text).expect("write jobs");
        let (code, stdout, stderr) = perf(&["-j", "j.ini", "-t", "0.2"], &dir);
        assert_eq!(code, 2, "{text:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{text:?}: stderr {stderr:?}, want {want:?}"
        );
        assert!(!stdout.contains("IOPS"), "no I/O ran: {stdout}");
    }
}

#[test]
fn options_are_checked() {
    let dir = tmpdir("opts");
    let (code, _, stderr) = perf(&["-o", "4k", "-w", "randread", "-t", "1"], &dir);
    assert_eq!(code, 2);
    assert!(stderr.contains("missing -q"), "{stderr}");
    let (code, _, stderr) = perf(&["-q", "1", "-o", "4q", "-w", "randread", "-t", "1"], &dir);
    assert_ne!(code, 0);
    assert!(stderr.contains("'4q' is not a size"), "{stderr}");
    let (code, _, stderr) = perf(&["-q", "1", "-o", "4k", "-w", "verify", "-t", "1"], &dir);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown workload 'verify'"), "{stderr}");
    let (code, _, stderr) = perf(
        &["-q", "1", "-o", "4k", "-w", "read", "-t", "1", "-T", "Nope"],
        &dir,
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown bdev 'Nope'"), "{stderr}");
    let help = Command::new(env!("CARGO_BIN_EXE_ioband_perf"))
        .arg("-h")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&help.stdout);
    for opt in [
        "-q",
        "-o",
        "-w",
        "-M",
        "-t",
        "-m",
        "--json",
        "-T",
        "-j",
        "--output",
        "--events",
        "startdelay",
        "flush",
    ] {
        assert!(text.contains(opt), "help lacks {opt}: {text}");
    }
}

fn is_num(v: &Value) -> bool {
    v.is_number()
}

#[test]
fn json_output_schema() {
    let dir = tmpdir("json");
    std::fs::write(
        dir.join("j.ini"),
        "[global]\nbs=4k\niodepth=4\n[t1]\nfilename=band0\ngroup=tag:1\n\
         [t2]\nfilename=band0\ngroup=tag:2\nrw=randrw\nrwmixread=70\n[p]\nfilename=PT1\n",
    )
    .expect("write jobs");
    let (code, stdout, stderr) = perf(&["-j", "j.ini", "-t", "0.2", "--output", "json"], &dir);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    assert_eq!(v["version"], 1);
    assert_eq!(v["core_mask"], "0x1");
    assert_eq!(v["core_count"], 1);
    assert!(is_num(&v["runtime"]) && is_num(&v["window_s"]));
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    for r in results {
        for k in ["job", "bdev", "core_mask", "workload", "status"] {
            assert!(r[k].is_string(), "{k} in {r}");
        }
        for k in [
            "core",
            "percentage",
            "queue_depth",
            "io_size",
            "runtime",
            "iops",
            "mibps",
            "ios",
            "bytes",
            "io_failed",
            "io_timeout",
            "fail_per_s",
            "timeout_per_s",
            "avg_latency_us",
            "min_latency_us",
            "max_latency_us",
            "p50_latency_us",
            "p99_latency_us",
            "p999_latency_us",
        ] {
            assert!(is_num(&r[k]), "{k} in {r}");
        }
        assert_eq!(r["status"], "finished");
        assert!(r["ios"].as_u64().expect("ios") > 0);
        assert!(r["group"].is_string() || r["group"].is_null());
    }
    assert_eq!(results[1]["workload"], "randrw");
    assert_eq!(results[1]["percentage"], 70);
    assert_eq!(results[0]["group"], "tag:1");
    for k in [
        "iops",
        "mibps",
        "avg_latency_us",
        "p99_latency_us",
        "p999_latency_us",
    ] {
        assert!(is_num(&v["total"][k]), "total.{k}");
    }
    let shares = v["shares"].as_array().expect("shares");
    assert_eq!(shares.len(), 1, "one ioband target");
    let s = &shares[0];
    assert_eq!(
        (s["bdev"].as_str(), s["policy"].as_str()),
        (Some("band0"), Some("weight"))
    );
    assert_eq!(s["cost_unit"], "io");
    assert!(s["windows_used"].is_array());
    let groups = s["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2);
    let g = &groups[0];
    assert_eq!(g["group"], "tag:1");
    assert_eq!(g["weight"], 300);
    assert!((g["configured_share"].as_f64().expect("share") - 0.75).abs() < 1e-9);
    for k in [
        "achieved_share",
        "share_error",
        "abs_share_error",
        "iops",
        "kib_per_sec",
        "cost",
    ] {
        assert!(is_num(&g[k]), "{k} in {g}");
    }
    assert!(g["window_cost"].is_array() && g["window_share"].is_array());
    assert!(g["min_met_ratio"].is_null() && g["max_exceeded_ratio"].is_null());
    for k in [
        "max_share_error",
        "mean_share_error",
        "jain_index",
        "total_kib_per_sec",
    ] {
        assert!(is_num(&s[k]), "{k} in share table");
    }
}

#[test]
fn table_output_has_bdevperf_columns() {
    let dir = tmpdir("table");
    let (code, stdout, stderr) = perf(
        &[
            "-q", "4", "-o", "4096", "-w", "randread", "-t", "0.2", "-T", "band0", "-g", "tag:1",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{stderr}");
    for col in [
        "Latency(us)",
        "runtime(s)",
        "IOPS",
        "MiB/s",
        "Fail/s",
        "TO/s",
        "Average",
        "min",
        "max",
        "p99.9",
        "Total",
    ] {
        assert!(stdout.contains(col), "lacks {col}: {stdout}");
    }
    assert!(
        stdout.contains(
            "Job: band0 (Core Mask 0x1, workload: randread, depth: 4, IO size: 4096, group: tag:1)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("Shares of band0"), "{stdout}");
    assert!(!stdout.contains('\r'), "no progress line off a terminal");
}

#[test]
fn passthru_forwards_and_round_trips_through_config() {
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    let methods = Methods::new();
    let call = |rig: &Rig, method: &str, params: Value| {
        let p = match params {
            Value::Object(m) => jsonrpc_core::Params::Map(m),
            _ => jsonrpc_core::Params::None,
        };
        rig.on(0, || methods.call(&app, method, p))
    };
    call(
        &rig,
        "bdev_malloc_create",
        json!({"name": "M0", "num_blocks": 64, "block_size": 512}),
    )
    .expect("malloc");
    assert_eq!(
        call(
            &rig,
            "bdev_passthru_create",
            json!({"base_bdev_name": "M0", "name": "PT0"})
        ),
        Ok(json!("PT0"))
    );
    let e = call(
        &rig,
        "bdev_passthru_create",
        json!({"base_bdev_name": "M0", "name": "PT0"}),
    )
    .expect_err("exists");
    assert_eq!(e.code.code(), -17);
    let e = call(
        &rig,
        "bdev_passthru_create",
        json!({"base_bdev_name": "Nope", "name": "PT9"}),
    )
    .expect_err("no base");
    assert_eq!(e.code.code(), -19);
    let e = call(
        &rig,
        "bdev_passthru_create",
        json!({"base": "M0", "name": "PT9"}),
    )
    .expect_err("bad params");
    assert_eq!(e.code.code(), -32602);
    // The base is claimed while the passthru sits on it.
    let e = call(&rig, "bdev_malloc_delete", json!({"name": "M0"})).expect_err("claimed");
    assert_eq!(e.code.code(), -16);

    // Data goes through both ways.
    let pt = rig.on(0, || app.bdev("PT0")).expect("registered");
    let c = Client::new(&rig, 1, &pt, None);
    c.closed_loop.set(false);
    let data = vec![0xabu8; 512];
    rig.on(1, || {
        c.submit(bdev_ioband_host::bdev::IoType::Write, 3, Some(&data))
    });
    rig.run(4, 1000);
    rig.on(1, || {
        c.submit(bdev_ioband_host::bdev::IoType::Read, 3, None)
    });
    rig.run(4, 1000);
    assert_eq!(c.success.get(), 2);
    assert_eq!(*c.last_read.borrow(), data);
    assert_eq!(pt.stats().snapshot().num_read_ops, 1);

    let cfg = rig.on(0, || bdev_config(&app));
    assert!(cfg.contains(
        &json!({"method": "bdev_passthru_create", "params": {"base_bdev_name": "M0", "name": "PT0"}})
    ));
    let text = json!({"subsystems": [{"subsystem": "bdev", "config": cfg}]}).to_string();
    let app2 = rig.on(0, App::new).expect("app");
    let n = rig
        .on(0, || load_config(&app2, &Methods::new(), &text))
        .expect("replays");
    assert_eq!(n, 2);
    assert_eq!(
        rig.on(0, || app2.bdev("PT0")).map(|b| b.product_name()),
        Ok("passthru")
    );

    assert_eq!(
        call(&rig, "bdev_passthru_delete", json!({"name": "PT0"})),
        Ok(json!(true))
    );
    let e = call(&rig, "bdev_passthru_delete", json!({"name": "M0"})).expect_err("not a passthru");
    assert_eq!(e.code.code(), -19);
    assert_eq!(
        call(&rig, "bdev_malloc_delete", json!({"name": "M0"})),
        Ok(json!(true))
    );
}

/// A small XML well-formedness check: one root, balanced tags, quoted attributes, known
/// entities only.
fn check_xml(text: &str) -> Result<usize, String> {
    let body = text
        .strip_prefix("<?xml")
        .and_then(|r| r.split_once("?>"))
        .map(|(_, rest)| rest)
        .ok_or("no XML declaration")?;
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut roots = 0;
    let mut rest = body;
    while let Some(lt) = rest.find('<') {
        check_text(&rest[..lt])?;
        let after = &rest[lt + 1..];
        let gt = after.find('>').ok_or("unclosed tag")?;
        let tag = &after[..gt];
        rest = &after[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("stray </{name}>"))?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '-')
        {
            return Err(format!("bad element name '{name}'"));
        }
        check_attrs(attrs)?;
        elements += 1;
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name.to_owned());
        }
    }
    check_text(rest)?;
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(elements)
}

fn check_text(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(amp) = rest.find('&') {
        let after = &rest[amp + 1..];
        let semi = after.find(';').ok_or("bare &")?;
        if !["amp", "lt", "gt", "quot", "apos"].contains(&&after[..semi]) {
            return Err(format!("unknown entity &{};", &after[..semi]));
        }
        rest = &after[semi + 1..];
    }
    if t.contains('>') && !t.trim().is_empty() && t.contains('<') {
        return Err("stray angle bracket".into());
    }
    Ok(())
}

fn check_attrs(attrs: &str) -> Result<(), String> {
    let mut rest = attrs.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or(format!("attribute without value: {rest}"))?;
        let name = rest[..eq].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad attribute name '{name}'"));
        }
        let after = rest[eq + 1..].trim_start();
        let q = after.chars().next().ok_or("missing value")?;
        if q != '"' && q != '\'' {
            return Err(format!("unquoted value of {name}"));
        }
        let end = after[1..].find(q).ok_or("unterminated value")?;
        let value = &after[1..1 + end];
        if value.contains('<') {
            return Err(format!("'<' in value of {name}"));
        }
        check_text(value)?;
        rest = after[end + 2..].trim_start();
    }
    Ok(())
}

#[test]
fn svg_writer_is_well_formed() {
    let series = vec![
        Series {
            name: "tag:1 <w 300> & \"friends\"".into(),
            points: vec![(0.05, 74.0), (0.15, 75.5), (0.25, f64::NAN)],
            dashed: false,
        },
        Series {
            name: "configured".into(),
            points: vec![(0.0, 75.0), (0.3, 75.0)],
            dashed: true,
        },
        Series {
            name: "empty".into(),
            points: vec![],
            dashed: false,
        },
    ];
    let svg = line_chart("share <over> time", "seconds", "share (%)", &series, None);
    let n = check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert!(n > 10);
    // Short solid series get a marker per point (a lone point shows), dashed ones none.
    assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
    assert!(svg.contains("<svg") && svg.contains("polyline") && svg.contains("&lt;w 300&gt;"));
    let many: Vec<Series> = (0..30)
        .map(|i| Series {
            name: format!("g{i}"),
            points: vec![(0.0, f64::from(i)), (1.0, f64::from(i))],
            dashed: false,
        })
        .collect();
    check_xml(&line_chart("many", "x", "y", &many, Some(100.0))).expect("well-formed");
    let bars = bar_chart(
        "IOPS & co",
        "IOPS",
        &[
            ("bare".into(), 1.7e7),
            ("ioband".into(), 2.6e6),
            ("inf".into(), f64::INFINITY),
        ],
    );
    check_xml(&bars).unwrap_or_else(|e| panic!("{e}\n{bars}"));
    check_xml(&bar_chart("none", "y", &[])).expect("empty chart is well-formed");
    // The checker itself rejects broken documents.
    assert!(check_xml("<?xml version=\"1.0\"?><svg><g></svg>").is_err());
    assert!(check_xml("<?xml version=\"1.0\"?><svg a=b/>").is_err());
    assert!(check_xml("<?xml version=\"1.0\"?><svg>&nbsp;</svg>").is_err());
}

/// A share spanning two ioband bdevs gets one table over both: its default groups at
/// 300:100 are configured 3/4 and 1/4 of the share, not 100% each of their own bdev.
#[test]
fn a_share_over_two_bdevs_gets_one_table() {
    let dir = tmpdir("two_bdevs");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/ioband_tgt.json");
    // The example also exports band0 over iSCSI on 127.0.0.1:3260 (and NBD): ioband_perf
    // loads only its bdev subsystem, so it runs while that port is taken (by this listener,
    // or, when binding fails, by whoever has it).
    let _portal = std::net::TcpListener::bind("127.0.0.1:3260");
    let out = Command::new(env!("CARGO_BIN_EXE_ioband_perf"))
        .current_dir(&dir)
        .args(["--json", example, "-q", "32", "-o", "4k", "-w", "randread"])
        .args(["-t", "0.3", "--output", "json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let shares = v["shares"].as_array().expect("shares");
    assert_eq!(shares.len(), 1, "one table for share0: {shares:?}");
    let s = &shares[0];
    assert_eq!(s["share"], "share0");
    assert_eq!(s["bdev"], "band0,band1");
    let groups = s["groups"].as_array().expect("groups");
    let configured: Vec<(String, f64)> = groups
        .iter()
        .map(|g| {
            let label = g["group"].as_str().expect("label").to_owned();
            (label, g["configured_share"].as_f64().expect("configured"))
        })
        .collect();
    assert_eq!(
        configured,
        [
            ("band0/none".to_owned(), 0.75),
            ("band1/none".to_owned(), 0.25)
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model device whose FLUSHes take 20 ms off its server, and an ioband bdev over it.
const FLUSH_CONFIG: &str = r#"{"subsystems":[{"subsystem":"bdev","config":[
 {"method":"bdev_model_create","params":{"name":"Model0","num_blocks":65536,"block_size":4096,
  "iops":100000,"latency_us":10,"queue_depth":32,"flush_latency_us":20000}},
 {"method":"bdev_ioband_create","params":{"name":"band0","base_bdev_name":"Model0","share":"s0","policy":"weight"}},
 {"method":"bdev_ioband_set_settings","params":{"name":"band0","group":"tag:1","value":100}},
 {"method":"bdev_ioband_set_settings","params":{"name":"band0","group":"tag:2","value":100}}
]}]}"#;

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).expect("stdout is one JSON document")
}

fn group<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["shares"][0]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["group"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {v}"))
}

/// A job with `startdelay` submits only from its delay on, for its runtime; the run lasts
/// until the latest job's end.
#[test]
fn startdelay_jobs_submit_only_in_their_interval() {
    let dir = tmpdir("startdelay");
    std::fs::write(
        dir.join("j.ini"),
        "[global]\nbs=4k\niodepth=4\nfilename=band0\n[early]\ngroup=tag:1\n\
         [late]\ngroup=tag:2\nstartdelay=0.3\nruntime=0.2\n",
    )
    .expect("write jobs");
    let (code, stdout, stderr) = perf(
        &[
            "-j",
            "j.ini",
            "-t",
            "0.3",
            "--window-ms",
            "100",
            "--output",
            "json",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{stderr}");
    let v = json_of(&stdout);
    assert!((v["duration_s"].as_f64().expect("duration") - 0.5).abs() < 1e-9);
    let late = &v["results"][1];
    assert_eq!(late["start_delay_s"], 0.3);
    assert_eq!(v["results"][0]["start_delay_s"], 0.0);
    let runtime = late["runtime"].as_f64().expect("runtime");
    assert!(runtime > 0.0 && runtime <= 0.2 + 1e-9, "{late}");
    assert!(late["ios"].as_u64().expect("ios") > 0);
    // Nothing of the late job completes in its first three 100 ms windows.
    let costs: Vec<u64> = group(&v, "tag:2")["window_cost"]
        .as_array()
        .expect("windows")
        .iter()
        .map(|c| c.as_u64().expect("cost"))
        .collect();
    assert!(costs.len() >= 5, "{costs:?}");
    assert_eq!(&costs[..3], &[0, 0, 0], "{costs:?}");
    assert!(costs[3..].iter().sum::<u64>() > 0, "{costs:?}");
    // The early job ran from the start, and ended at 0.3 s: nothing after 0.3 s but its
    // drain.
    let early: Vec<u64> = group(&v, "tag:1")["window_cost"]
        .as_array()
        .expect("windows")
        .iter()
        .map(|c| c.as_u64().expect("cost"))
        .collect();
    assert!(early[0] > 0, "{early:?}");
    assert!(early.iter().skip(4).all(|&c| c == 0), "{early:?}");
    // The table shows the delay.
    let (code, stdout, stderr) = perf(&["-j", "j.ini", "-t", "0.3"], &dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("startdelay: 0.3 s"), "{stdout}");
}

/// Events are called at their time on the running host: a weight set at 0.2 s is the
/// group's weight at the end, and the report says when each event ran.
#[test]
fn events_change_settings_while_jobs_run() {
    let dir = tmpdir("events");
    std::fs::write(
        dir.join("j.ini"),
        "[global]\nbs=4k\niodepth=4\nfilename=band0\n[a]\ngroup=tag:1\n[b]\ngroup=tag:2\n",
    )
    .expect("write jobs");
    std::fs::write(
        dir.join("e.json"),
        r#"[
  {"at_s": 0.2, "method": "bdev_ioband_set_settings",
   "params": {"name": "band0", "group": "tag:2", "value": 900}},
  {"at_s": 0.1, "method": "bdev_ioband_set_device", "params": {"name": "band0", "io_throttle": 8}}
]"#,
    )
    .expect("write events");
    let (code, stdout, stderr) = perf(
        &[
            "-j", "j.ini", "-t", "0.4", "--events", "e.json", "--output", "json",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{stderr}");
    let v = json_of(&stdout);
    let events = v["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    // In time order, each at or after its time and before the run's end.
    assert_eq!(events[0]["method"], "bdev_ioband_set_device");
    assert_eq!(events[1]["method"], "bdev_ioband_set_settings");
    for e in events {
        let (at, ran) = (
            e["at_s"].as_f64().expect("at"),
            e["ran_at_s"].as_f64().expect("ran"),
        );
        assert!(ran >= at && ran < 0.4, "{e}");
    }
    assert_eq!(group(&v, "tag:2")["weight"], 900);
    assert_eq!(group(&v, "tag:1")["weight"], 300);
    assert_eq!(v["shares"][0]["io_throttle"], 8);
}

/// A failing event aborts the run with the RPC's error, naming the event's line; bad
/// events files are refused before any I/O.
#[test]
fn events_errors_abort_or_refuse_the_run() {
    let dir = tmpdir("events_err");
    std::fs::write(
        dir.join("e.json"),
        "[\n {\"at_s\": 0.1, \"method\": \"bdev_ioband_set_settings\",\n  \"params\": {\"name\": \"nosuch\", \"group\": \"tag:1\", \"value\": 5}}\n]",
    )
    .expect("write events");
    let args = [
        "-q", "4", "-o", "4k", "-w", "randread", "-T", "band0", "-t", "5", "--events", "e.json",
    ];
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = perf(&args, &dir);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("e.json:2: event bdev_ioband_set_settings at 0.1 s failed:")
            && stderr.contains("nosuch")
            && stderr.contains("(code -19)"),
        "{stderr}"
    );
    // The jobs were stopped, not run to their end.
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    let cases: &[(&str, &str)] = &[
        (
            "[{\"at_s\": 0.1, \"method\": \"bdev_nope\"}]",
            "e.json:1: unknown method 'bdev_nope'",
        ),
        (
            "[\n{\"at_s\": 0.1, \"method\": \"bdev_get_bdevs\"},\n{\"at_s\": 9, \"method\": \"bdev_get_bdevs\"}]",
            "e.json:3: at_s 9 is after the run's end",
        ),
        (
            "[{\"at\": 0.1, \"method\": \"bdev_get_bdevs\"}]",
            "e.json:1: unknown key 'at'",
        ),
        ("[{\"at_s\": 0.1,", "e.json:1: not JSON"),
    ];
    for (text, want) in cases {
        std::fs::write(dir.join("e.json"), text).expect("write events");
        let (code, stdout, stderr) = perf(
            &[
                "-q", "4", "-o", "4k", "-w", "randread", "-T", "band0", "-t", "0.2", "--events",
                "e.json",
            ],
            &dir,
        );
        assert_eq!(code, 2, "{text}: {stderr}");
        assert!(stderr.contains(want), "{text}: {stderr:?}, want {want:?}");
        assert!(!stdout.contains("IOPS"), "no I/O ran: {stdout}");
    }
}

/// `-w flush` sends FLUSHes of 0 bytes; on a model with a flush latency each takes at least
/// that long, directly and through ioband.
#[test]
fn flush_workload_on_a_slow_flush_model() {
    let dir = tmpdir("flush");
    for target in ["Model0", "band0"] {
        let (code, stdout, stderr) = perf_with(
            FLUSH_CONFIG,
            &[
                "-q", "1", "-w", "flush", "-o", "4k", "-t", "0.2", "-T", target, "-g", "tag:1",
                "--output", "json",
            ],
            &dir,
        );
        assert_eq!(code, 0, "{stderr}");
        let v = json_of(&stdout);
        let r = &v["results"][0];
        assert_eq!(r["workload"], "flush");
        assert_eq!(
            (r["io_size"].as_u64(), r["bytes"].as_u64()),
            (Some(0), Some(0))
        );
        let ios = r["ios"].as_u64().expect("ios");
        // 0.2 s of one outstanding 20 ms FLUSH: at most 10 complete in time.
        assert!((1..=10).contains(&ios), "{r}");
        assert!(
            r["min_latency_us"].as_f64().expect("min") >= 19_900.0,
            "{r}"
        );
    }
    // In a jobs file too, beside a reader that keeps going.
    std::fs::write(
        dir.join("j.ini"),
        "[global]\nfilename=band0\n[reader]\ngroup=tag:1\niodepth=4\n[syncer]\ngroup=tag:2\nrw=flush\niodepth=1\n",
    )
    .expect("write jobs");
    let (code, stdout, stderr) = perf_with(
        FLUSH_CONFIG,
        &["-j", "j.ini", "-t", "0.2", "--output", "json"],
        &dir,
    );
    assert_eq!(code, 0, "{stderr}");
    let v = json_of(&stdout);
    assert_eq!(v["results"][1]["workload"], "flush");
    assert!(
        v["results"][0]["ios"].as_u64().expect("ios")
            > v["results"][1]["ios"].as_u64().expect("ios")
    );
}

/// The model's FLUSH, with a flush latency, completes that long after submission and
/// leaves the server free; without one it is served like any I/O. Stepped by hand.
#[test]
fn model_flush_latency_does_not_occupy_the_server() {
    let mut rig = Rig::new(1);
    let app = rig.on(0, App::new).expect("app");
    let methods = Methods::new();
    let create = |rig: &Rig, name: &str, flush_us: Option<u64>| {
        let mut p = json!({"name": name, "num_blocks": 64, "block_size": 4096, "iops": 1000,
            "latency_us": 0, "queue_depth": 8});
        if let Some(us) = flush_us {
            p["flush_latency_us"] = json!(us);
        }
        let Value::Object(m) = p else { unreachable!() };
        rig.on(0, || {
            methods.call(&app, "bdev_model_create", jsonrpc_core::Params::Map(m))
        })
    };
    assert_eq!(create(&rig, "Slow", Some(5000)), Ok(json!("Slow")));
    assert_eq!(create(&rig, "Plain", None), Ok(json!("Plain")));
    // An existing name is refused on the flush-latency path too.
    let e = create(&rig, "Slow", Some(5000)).expect_err("exists");
    assert_eq!(e.code.code(), -17);
    let ms = 1_000_000u64; // ticks
    for (name, flush_done_ms, read_done_ms) in [("Slow", 5, 1), ("Plain", 1, 2)] {
        let bdev = rig.on(0, || app.bdev(name)).expect("registered");
        let flusher = Client::new(&rig, 0, &bdev, None);
        let reader = Client::new(&rig, 0, &bdev, None);
        flusher.closed_loop.set(false);
        reader.closed_loop.set(false);
        rig.on(0, || {
            flusher.submit(bdev_ioband_host::bdev::IoType::Flush, 0, None);
            reader.submit(bdev_ioband_host::bdev::IoType::Read, 1, None);
        });
        let mut flush_at = None;
        let mut read_at = None;
        for step in 1..=6u64 {
            rig.run(1, ms);
            if flush_at.is_none() && flusher.success.get() == 1 {
                flush_at = Some(step);
            }
            if read_at.is_none() && reader.success.get() == 1 {
                read_at = Some(step);
            }
        }
        assert_eq!(
            (flush_at, read_at),
            (Some(flush_done_ms), Some(read_done_ms)),
            "{name}"
        );
    }
    let cfg = rig.on(0, || bdev_config(&app));
    let slow = cfg
        .iter()
        .find(|e| e["params"]["name"] == "Slow")
        .expect("Slow in config");
    assert_eq!(slow["params"]["flush_latency_us"], 5000);
    let plain = cfg
        .iter()
        .find(|e| e["params"]["name"] == "Plain")
        .expect("Plain in config");
    assert!(plain["params"].get("flush_latency_us").is_none(), "{plain}");
}

#[test]
fn bench_refuses_an_unknown_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_ioband_bench"))
        .args(["--only", "closed_loop,nope", "--out"])
        .arg(tmpdir("bench_only"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown scenario 'nope'"), "{stderr}");
    assert!(
        stderr.contains("churn") && stderr.contains("slow_io"),
        "{stderr}"
    );
}
