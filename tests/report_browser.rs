//! The report page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs) driven over the WebDriver protocol by a tiny
//! HTTP client. The page rendered from the results fixture loads with no console error, every
//! chart is drawn with a size, the page fits a phone's width, and no request leaves the file.
//!
//! `DAYDREAM_REPORT_SCREENSHOT=PATH` also saves a full-page screenshot there (`docs/report.png`).

mod report_fixture;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daydream::seed::report::{render, report_data};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port. Dropped (also when an assertion fails), it ends its browser
/// session, which quits Chromium, then is killed.
struct Driver {
    child: Child,
    port: u16,
    session: Option<String>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            let _ = self.try_call("DELETE", &format!("/session/{id}"), None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: this test needs headless Chromium; install it with \
                 `apt-get install -y --no-install-recommends chromium chromium-driver` (as .ci/run does)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            port,
            session: None,
        };
        let start = Instant::now();
        loop {
            if let Ok(status) = driver.try_call("GET", "/status", None)
                && status["value"]["ready"] == true
            {
                return driver;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let reply = self
            .try_call(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(
            reply["value"].get("error").is_none(),
            "{method} {path}: {}",
            reply["value"]
        );
        reply
    }

    /// One HTTP/1.1 request on its own connection; the JSON body of the answer.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> std::io::Result<Value> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        // chromedriver keeps the connection open: read the header, then Content-Length bytes
        let mut reply = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let (split, length) = loop {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::other("the connection closed before an answer"));
            }
            reply.extend_from_slice(&chunk[..n]);
            if let Some(split) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&reply[..split]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| std::io::Error::other(format!("no Content-Length in {head:?}")))?;
                break (split, length);
            }
        };
        while reply.len() < split + 4 + length {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::other("the connection closed inside an answer"));
            }
            reply.extend_from_slice(&chunk[..n]);
        }
        serde_json::from_slice(&reply[split + 4..split + 4 + length]).map_err(std::io::Error::other)
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .map(value)
        .collect();
    digits
        .chunks(4)
        .flat_map(|q| {
            let n = q
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, d)| n | (*d as u32) << (18 - 6 * i));
            n.to_be_bytes()[1..q.len()].to_vec()
        })
        .collect()
}

#[test]
fn the_report_loads_offline_in_chromium_with_every_chart_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("data/6_summary/report.html");
    std::fs::create_dir_all(page.parent().unwrap()).unwrap();
    std::fs::write(
        &page,
        render(&report_data(&report_fixture::inputs(), report_fixture::run())),
    )
    .unwrap();
    let profile = dir.path().join("chromium-profile");

    let mut driver = Driver::start();
    let session = driver.call(
        "POST",
        "/session",
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1100,900",
                         format!("--user-data-dir={}", profile.display())],
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}})),
    );
    let id = session["value"]["sessionId"].as_str().expect("a session id").to_owned();
    driver.session = Some(id.clone());
    let driver = driver;
    let s = |rest: &str| format!("/session/{id}{rest}");
    let script = |source: &str| {
        driver.call("POST", &s("/execute/sync"), Some(json!({"script": source, "args": []})))["value"].clone()
    };

    let log = |kind: &str| -> Vec<Value> {
        let reply = driver.call("POST", &s("/se/log"), Some(json!({ "type": kind })));
        reply["value"].as_array().cloned().unwrap_or_default()
    };
    // reading a log empties it: what the browser's own start page loaded is left behind
    log("performance");
    log("browser");

    let url = format!("file://{}", page.display());
    driver.call("POST", &s("/url"), Some(json!({ "url": url })));
    assert_eq!(script("return document.readyState"), "complete");

    // every chart: an svg with a rendered size
    let charts = script(
        "return Array.from(document.querySelectorAll('figure[data-chart]')).map(f => {
           const svg = f.querySelector('svg');
           const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
           return {chart: f.dataset.chart, width: r.width, height: r.height};
         })",
    );
    let charts = charts.as_array().expect("a list of charts");
    let names: Vec<&str> = charts.iter().map(|c| c["chart"].as_str().unwrap()).collect();
    assert_eq!(names, ["heatmap", "distribution", "agreement", "parse-failures"]);
    for c in charts {
        let (w, h) = (c["width"].as_f64().unwrap(), c["height"].as_f64().unwrap());
        assert!(w > 100.0 && h > 100.0, "chart {} is {w} x {h}", c["chart"]);
    }
    // the SVG text is laid out by the browser's own fonts
    let text_width =
        script("return Math.max(...Array.from(document.querySelectorAll('svg text')).map(t => t.getBBox().width))");
    assert!(
        text_width.as_f64().unwrap() > 20.0,
        "chart labels are drawn: {text_width}"
    );

    // on a phone's width the page itself does not scroll sideways (wide tables scroll in place)
    if let Some(path) = std::env::var_os("DAYDREAM_REPORT_SCREENSHOT") {
        let height = script("return document.documentElement.scrollHeight").as_f64().unwrap();
        driver.call(
            "POST",
            &s("/window/rect"),
            Some(json!({"width": 1100, "height": height + 120.0})),
        );
        let png = driver.call("GET", &s("/screenshot"), None);
        std::fs::write(&path, base64_decode(png["value"].as_str().unwrap())).unwrap();
    }
    driver.call("POST", &s("/window/rect"), Some(json!({"width": 390, "height": 844})));
    let overflow = script("return document.documentElement.scrollWidth - document.documentElement.clientWidth");
    assert!(
        overflow.as_f64().unwrap() <= 0.0,
        "the page is {overflow} px wider than a phone"
    );
    let svg_fits = script(
        "return Array.from(document.querySelectorAll('svg')).every(s => s.getBoundingClientRect().width <= document.documentElement.clientWidth)",
    );
    assert_eq!(svg_fits, true, "charts scale down to a phone's width");

    let errors: Vec<String> = log("browser")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].to_string())
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    let requests: Vec<String> = log("performance")
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
        .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
        .map(|m| m["message"]["params"].clone())
        // what the page asked for (the browser's new-tab page may still be loading its own)
        .filter(|p| p["documentURL"] == url.as_str())
        .filter_map(|p| p["request"]["url"].as_str().map(str::to_owned))
        .collect();
    assert!(requests.contains(&url), "the page's own load is logged: {requests:?}");
    let leaving: Vec<&String> = requests
        .iter()
        .filter(|u| !u.starts_with("file://") && !u.starts_with("data:"))
        .collect();
    assert!(leaving.is_empty(), "requests leave the file: {leaving:?}");
}
