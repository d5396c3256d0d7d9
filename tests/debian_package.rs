//! The Debian package (issue "Proof that the mailbox works", item 5).
//!
//! Builds it for real with `scripts/build-deb.sh` (release build, completions
//! from the fresh binary, `cargo deb --no-build`; it installs dpkg-dev and
//! cargo-deb first when they are missing), then checks it without installing
//! it into this system:
//! - `dpkg-deb -I` / `-c` / `-e`: the fields, the files with their modes, the
//!   conffile listed in `conffiles`, the maintainer scripts;
//! - `dpkg -x` into a temp root: the packaged binary passes
//!   `check-config --offline` on the packaged conffile, with no secret on
//!   the machine; the unit is the repository's with `/usr/bin/secmail`; the
//!   man pages are doc/man's, gzipped; the completions are the binary's;
//! - the maintainer scripts pass `sh -n` and are run the way dpkg runs them
//!   (install, reconfigure, remove, purge) with every command they call
//!   replaced by a recorder, so what they would do to a system is checked,
//!   idempotency included, and nothing happens to this one.
//!
//! Time: the first build compiles the release profile from scratch (about
//! 3 minutes on 2 cores, plus about 1 minute to install cargo-deb once);
//! later runs rebuild only what changed (under a minute) and `cargo deb`
//! takes a few seconds, so the test always checks the current source.
//!
//! The man pages are also held to the CLI and the example config: every
//! subcommand of `secmail --help` and `secmail case ID --help` is described in
//! secmail(1), every section and key of config.example.toml in
//! secmail.toml(5).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd`, insists on success, returns its stdout.
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Package {
    deb: PathBuf,
    /// `dpkg -x` of the package, in target/debian-unpacked/root.
    root: PathBuf,
    /// `dpkg-deb -e`: control, conffiles, postinst, prerm, postrm.
    control: PathBuf,
}

/// The package, built once per test run and shared by the tests below (a
/// failed build fails them all, without building again).
fn package() -> &'static Package {
    static PACKAGE: OnceLock<Result<Package, String>> = OnceLock::new();
    let built = PACKAGE.get_or_init(|| {
        std::panic::catch_unwind(build_package).map_err(|e| {
            e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
        })
    });
    match built {
        Ok(p) => p,
        Err(why) => panic!("the package could not be built: {why}"),
    }
}

fn build_package() -> Package {
    let started = Instant::now();
    let out = run(Command::new("bash").arg(repo().join("scripts/build-deb.sh")).current_dir(repo()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/build-deb.sh failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("").trim();
    let deb = repo().join(last);
    assert!(
        last.ends_with(".deb") && deb.is_file(),
        "build-deb.sh must print the .deb's path last, got {last:?}"
    );
    let size = std::fs::metadata(&deb).unwrap().len();
    println!(
        "[measure] built {} ({:.1} MiB) in {:.0} s",
        deb.display(),
        size as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
    // Unpacked under target/ (a static is never dropped, so no temp dir).
    let dir = repo().join("target/debian-unpacked");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.join("root");
    let control = dir.join("DEBIAN");
    ok(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));
    ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    Package { deb, root, control }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn gunzip(path: &Path) -> String {
    ok(Command::new("gzip").arg("-dc").arg(path))
}

#[test]
fn control_fields_and_file_list() {
    let p = package();
    let info = ok(Command::new("dpkg-deb").arg("-I").arg(&p.deb));
    println!("{info}");
    let field = |name: &str| -> String {
        info.lines()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{name}: ")).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {name}: field in dpkg-deb -I:\n{info}"))
    };
    assert_eq!(field("Package"), "secmail");
    assert!(field("Version").starts_with(env!("CARGO_PKG_VERSION")), "{}", field("Version"));
    let depends = field("Depends");
    for dep in ["adduser", "libc6", "libssl3"] {
        assert!(depends.split(',').any(|d| d.trim().starts_with(dep)), "Depends lacks {dep}: {depends}");
    }
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(&format!(" {script} ")), "no {script} in the control archive:\n{info}");
    }

    // `dpkg-deb -c`: mode and path of every file.
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&p.deb));
    let files: BTreeMap<String, String> = listing
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let path = words.last()?.trim_start_matches('.').to_string();
            Some((path, words.first()?.to_string()))
        })
        .collect();
    let want = [
        ("/usr/bin/secmail", "-rwxr-xr-x"),
        ("/usr/lib/systemd/system/secmail.service", "-rw-r--r--"),
        ("/etc/secmail/secmail.toml", "-rw-r-----"),
        ("/usr/share/man/man1/secmail.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man5/secmail.toml.5.gz", "-rw-r--r--"),
        ("/usr/share/bash-completion/completions/secmail", "-rw-r--r--"),
        ("/usr/share/zsh/vendor-completions/_secmail", "-rw-r--r--"),
        ("/usr/share/fish/vendor_completions.d/secmail.fish", "-rw-r--r--"),
        ("/usr/share/doc/secmail/copyright", "-rw-r--r--"),
        ("/usr/share/doc/secmail/examples/secmail.toml", "-rw-r--r--"),
    ];
    for (path, mode) in want {
        match files.get(path) {
            Some(m) => assert_eq!(m, mode, "mode of {path}"),
            None => panic!("{path} is not in the package:\n{listing}"),
        }
    }
    for line in listing.lines() {
        assert!(line.contains(" 0/0 ") || line.contains(" root/root "), "not owned by root: {line}");
    }

    let conffiles = read(&p.control.join("conffiles"));
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), ["/etc/secmail/secmail.toml"], "conffiles");
}

#[test]
fn packaged_binary_accepts_packaged_config_offline() {
    let p = package();
    let bin = p.root.join("usr/bin/secmail");
    let config = p.root.join("etc/secmail/secmail.toml");
    let version = ok(Command::new(&bin).arg("--version"));
    assert_eq!(version.trim(), concat!("secmail ", env!("CARGO_PKG_VERSION")));

    let text = read(&config);
    assert!(
        text.lines().next().unwrap_or("").contains("shipped by the secmail Debian package"),
        "the packaged config must say at its top what it is"
    );
    let out = ok(Command::new(&bin)
        .env_remove("SECMAIL_CONFIG")
        .arg("--config")
        .arg(&config)
        .args(["check-config", "--offline"]));
    println!("{out}");
    assert!(out.contains("OK"), "{out}");

    // The dry run: Maildir in, .eml files out, both where the unit may write.
    let live: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    for section in ["[maildir]", "[outbox_dir]"] {
        assert!(live.iter().any(|l| l.starts_with(section)), "{section} is not on in the packaged config");
    }
    for section in ["[imap]", "[smtp]"] {
        assert!(!live.iter().any(|l| l.starts_with(section)), "{section} must be commented out in the packaged config");
    }
    assert!(text.contains("\npath = \"/var/lib/secmail/maildir\""));
    assert!(text.contains("\npath = \"/var/lib/secmail/outbox\""));

    // Otherwise it is config.example.toml: every section and key is there,
    // on or commented out.
    let example = read(&repo().join("config.example.toml"));
    assert_eq!(config_keys(&text), config_keys(&example), "sections and keys of the packaged config and config.example.toml");
    // The example itself ships as documentation, unchanged.
    assert_eq!(read(&p.root.join("usr/share/doc/secmail/examples/secmail.toml")), example);
}

/// Lines that are not comments (the unit's header comment describes how it
/// was installed, which differs; the settings must not).
fn unit_settings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect()
}

#[test]
fn packaged_unit_is_the_repository_unit_at_usr_bin() {
    let p = package();
    let packaged = read(&p.root.join("usr/lib/systemd/system/secmail.service"));
    let repo_unit = read(&repo().join("systemd/secmail.service"));
    let expected: Vec<String> = unit_settings(&repo_unit)
        .iter()
        .map(|l| l.replace("/usr/local/bin/secmail", "/usr/bin/secmail"))
        .collect();
    assert_eq!(unit_settings(&packaged), expected);
    assert!(packaged.contains("\nExecStart=/usr/bin/secmail --config /etc/secmail/secmail.toml run\n"));
    assert!(!packaged.contains("/usr/local/bin"), "the packaged unit still names /usr/local/bin");
    for line in ["User=secmail", "Group=secmail", "StateDirectory=secmail", "ReadOnlyPaths=/etc/secmail"] {
        assert!(packaged.lines().any(|l| l == line), "the packaged unit lacks {line}");
    }
}

#[test]
fn man_pages_and_completions_are_installed() {
    let p = package();
    let man = p.root.join("usr/share/man");
    assert_eq!(gunzip(&man.join("man1/secmail.1.gz")), read(&repo().join("doc/man/secmail.1")));
    assert_eq!(gunzip(&man.join("man5/secmail.toml.5.gz")), read(&repo().join("doc/man/secmail.toml.5")));

    let share = p.root.join("usr/share");
    let bash = read(&share.join("bash-completion/completions/secmail"));
    let zsh = read(&share.join("zsh/vendor-completions/_secmail"));
    let fish = read(&share.join("fish/vendor_completions.d/secmail.fish"));
    assert!(zsh.starts_with("#compdef secmail"), "zsh completion: {}", zsh.lines().next().unwrap_or(""));
    assert!(fish.contains("complete -c secmail"), "fish completion");
    assert!(bash.contains("complete -F _secmail"), "bash completion");
    for (shell, text) in [("bash", &bash), ("zsh", &zsh), ("fish", &fish)] {
        for word in ["check-config", "quarantine", "release", "not-security", "offline", "builtin"] {
            assert!(text.contains(word), "the {shell} completion does not know {word}");
        }
        // Generated by the packaged binary: the same script it prints now.
        let now = ok(Command::new(p.root.join("usr/bin/secmail")).args(["completions", shell]));
        assert_eq!(&now, text, "{shell} completion differs from `secmail completions {shell}`");
    }
    ok(Command::new("bash").arg("-n").arg(share.join("bash-completion/completions/secmail")));
}

/// The recorder that stands in for every command a maintainer script calls:
/// it logs the call and keeps just enough state (users, groups,
/// statoverrides) in `$SHIM_STATE` to answer the scripts' questions.
const SHIM: &str = r#"#!/bin/sh
name=${0##*/}
printf '%s %s\n' "$name" "$*" >>"$SHIM_LOG"
key() { printf '%s' "$1" | /usr/bin/tr '/' '_'; }
case "$name" in
getent)
    [ -e "$SHIM_STATE/$1-$2" ] && exit 0
    exit 2 ;;
adduser)
    for user; do :; done
    : >"$SHIM_STATE/passwd-$user"
    case " $* " in *" --group "*) : >"$SHIM_STATE/group-$user" ;; esac
    exit 0 ;;
deb-systemd-helper)
    # debian-installed: after the first update-state; was-enabled: after enable.
    case "$1" in
    debian-installed) [ -e "$SHIM_STATE/dsh-installed" ] && exit 0; exit 1 ;;
    --quiet) [ "$2" = was-enabled ] && { [ -e "$SHIM_STATE/dsh-enabled" ] && exit 0; exit 1; } ;;
    update-state) : >"$SHIM_STATE/dsh-installed" ;;
    enable) : >"$SHIM_STATE/dsh-enabled" ;;
    esac
    exit 0 ;;
dpkg-statoverride)
    for path; do :; done
    f="$SHIM_STATE/override$(key "$path")"
    case " $* " in
    *" --list "*) [ -e "$f" ] && exit 0; exit 1 ;;
    *" --add "*) [ -e "$f" ] && exit 2; : >"$f" ;;
    *" --remove "*) [ -e "$f" ] || exit 2; /bin/rm "$f" ;;
    esac
    exit 0 ;;
esac
exit 0
"#;

const SHIMMED: &[&str] = &[
    "getent",
    "adduser",
    "dpkg-statoverride",
    "install",
    "rmdir",
    "deb-systemd-helper",
    "deb-systemd-invoke",
    "systemctl",
];

struct Recorder {
    dir: tempfile::TempDir,
}

impl Recorder {
    fn new() -> Recorder {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let shim = dir.path().join("shim");
        std::fs::write(&shim, SHIM).unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in SHIMMED {
            std::os::unix::fs::symlink(&shim, bin.join(name)).unwrap();
        }
        Recorder { dir }
    }

    fn state(&self, name: &str) -> PathBuf {
        self.dir.path().join("state").join(name)
    }

    /// Runs a maintainer script as dpkg would, with nothing but the recorders
    /// on PATH (an unexpected command fails the script); returns the calls.
    fn run(&self, script: &Path, args: &[&str]) -> Vec<String> {
        let log = self.dir.path().join("log");
        let _ = std::fs::remove_file(&log);
        let out = run(Command::new("/bin/sh")
            .arg(script)
            .args(args)
            .env_clear()
            .env("PATH", self.dir.path().join("bin"))
            .env("SHIM_LOG", &log)
            .env("SHIM_STATE", self.dir.path().join("state"))
            .env("DPKG_MAINTSCRIPT_PACKAGE", "secmail")
            .env("DPKG_MAINTSCRIPT_NAME", script.file_name().unwrap()));
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}):\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&log).unwrap_or_default().lines().map(str::to_owned).collect()
    }
}

fn calls<'a>(log: &'a [String], command: &str) -> Vec<&'a str> {
    log.iter().filter(|l| l.split(' ').next() == Some(command)).map(String::as_str).collect()
}

#[test]
fn maintainer_scripts_create_the_user_once_and_keep_data() {
    let p = package();
    let postinst = p.control.join("postinst");
    let prerm = p.control.join("prerm");
    let postrm = p.control.join("postrm");
    for script in [&postinst, &prerm, &postrm] {
        ok(Command::new("sh").arg("-n").arg(script));
        let text = read(script);
        assert!(text.starts_with("#!/bin/sh\n"), "{}", script.display());
        assert!(!text.contains("#DEBHELPER#"), "{} still has #DEBHELPER#", script.display());
    }
    let text = read(&postinst);
    assert!(
        text.contains("adduser --quiet --system --group --home /var/lib/secmail \\\n                --no-create-home --shell /usr/sbin/nologin secmail"),
        "postinst must create the system user secmail:\n{text}"
    );
    assert!(!text.contains("deb-systemd-invoke start"), "the service must not be started on install:\n{text}");

    // First install: the user and group, the state directory, the overrides.
    let r = Recorder::new();
    let first = r.run(&postinst, &["configure", ""]);
    println!("postinst configure (first install):\n  {}", first.join("\n  "));
    assert_eq!(
        calls(&first, "adduser"),
        ["adduser --quiet --system --group --home /var/lib/secmail --no-create-home --shell /usr/sbin/nologin secmail"]
    );
    if !Path::new("/var/lib/secmail").is_dir() {
        assert_eq!(calls(&first, "install"), ["install -d -m 0700 -o secmail -g secmail /var/lib/secmail"]);
    }
    let adds: BTreeSet<&str> = calls(&first, "dpkg-statoverride").into_iter().filter(|c| c.contains("--add")).collect();
    assert_eq!(
        adds,
        BTreeSet::from([
            "dpkg-statoverride --quiet --update --add root secmail 0640 /etc/secmail/secmail.toml",
            "dpkg-statoverride --quiet --update --add root secmail 0750 /etc/secmail",
        ])
    );
    // Not enabled, not started.
    assert!(!first.iter().any(|c| c.starts_with("deb-systemd-helper enable")), "{first:?}");
    assert!(!first.iter().any(|c| c.starts_with("deb-systemd-invoke")), "{first:?}");

    // Upgrade or reconfigure: nothing created twice; a service the admin
    // enabled stays enabled, and a running one is restarted (only where
    // systemd runs, as the snippet checks).
    let again = r.run(&postinst, &["configure", "0.1.0-1"]);
    println!("postinst configure 0.1.0-1 (upgrade):\n  {}", again.join("\n  "));
    assert!(calls(&again, "adduser").is_empty(), "{again:?}");
    assert!(!again.iter().any(|c| c.contains("--add")), "{again:?}");
    assert!(!again.iter().any(|c| c.starts_with("deb-systemd-helper enable")), "{again:?}");
    std::fs::write(r.state("dsh-enabled"), "").unwrap(); // systemctl enable secmail
    let enabled = r.run(&postinst, &["configure", "0.1.0-1"]);
    assert!(enabled.iter().any(|c| c == "deb-systemd-helper enable secmail.service"), "{enabled:?}");
    if Path::new("/run/systemd/system").is_dir() {
        assert!(again.iter().any(|c| c == "deb-systemd-invoke try-restart secmail.service"), "{again:?}");
    }

    // A group `secmail` without the user (made by hand): joined, not re-made.
    let r2 = Recorder::new();
    std::fs::write(r2.state("group-secmail"), "").unwrap();
    let log = r2.run(&postinst, &["configure", ""]);
    assert_eq!(
        calls(&log, "adduser"),
        ["adduser --quiet --system --ingroup secmail --home /var/lib/secmail --no-create-home --shell /usr/sbin/nologin secmail"]
    );

    // Remove, then purge: the overrides go; directories only if empty; the
    // user and the database stay.
    let rm = r.run(&prerm, &["remove"]);
    if Path::new("/run/systemd/system").is_dir() {
        assert!(rm.iter().any(|c| c == "deb-systemd-invoke stop secmail.service"), "{rm:?}");
    }
    r.run(&postrm, &["remove"]);
    let purge = r.run(&postrm, &["purge"]);
    println!("postrm purge:\n  {}", purge.join("\n  "));
    let removes: BTreeSet<&str> = calls(&purge, "dpkg-statoverride").into_iter().filter(|c| c.contains("--remove")).collect();
    assert_eq!(
        removes,
        BTreeSet::from([
            "dpkg-statoverride --quiet --remove /etc/secmail/secmail.toml",
            "dpkg-statoverride --quiet --remove /etc/secmail",
        ])
    );
    for c in calls(&purge, "rmdir") {
        assert!(c.starts_with("rmdir --ignore-fail-on-non-empty "), "purge may only remove empty directories: {c}");
    }
    assert!(!purge.iter().any(|c| c.starts_with("deluser") || c.contains("rm -")), "{purge:?}");
}

// ------------------------------------------------------------- man pages

/// `(section, key)` of every key in a config text, commented out or not:
/// `[a]`, `# [a]`, `[[a.b]]` open a section; `key = ` and `# key = ` lines
/// are keys (written with spaces around `=`, as the example does; prose such
/// as `spf=fail +2` is not a key).
fn config_keys(text: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        let l = line.strip_prefix('#').map(str::trim_start).unwrap_or(line).trim_end();
        if let Some(rest) = l.strip_prefix('[') {
            if let Some(end) = rest.find(']') {
                let name = rest[..end].trim_start_matches('[');
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.') {
                    section = format!("{}{name}{}", if rest.starts_with('[') { "[[" } else { "[" }, if rest.starts_with('[') { "]]" } else { "]" });
                    out.insert((section.clone(), String::new()));
                }
            }
            continue;
        }
        if let Some((key, _)) = l.split_once(" = ") {
            let key = key.trim();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !section.is_empty() {
                out.insert((section.clone(), key.to_string()));
            }
        }
    }
    out
}

/// `(section, key)` documented in secmail.toml(5): `.SS [section]` headings,
/// and `.B key` right after `.TP` or `.TQ`.
fn man_keys(roff: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut section = String::new();
    let mut after_tag = false;
    for line in roff.lines() {
        if let Some(name) = line.strip_prefix(".SS ") {
            section = name.trim().to_string();
            out.insert((section.clone(), String::new()));
        } else if let Some(key) = line.strip_prefix(".B ").filter(|_| after_tag && !section.is_empty()) {
            out.insert((section.clone(), key.trim().to_string()));
        }
        after_tag = line == ".TP" || line == ".TQ";
    }
    out
}

#[test]
fn secmail_toml_5_lists_every_section_and_key_of_the_example() {
    let example = config_keys(&read(&repo().join("config.example.toml")));
    assert!(example.len() > 80, "parsed too few keys from config.example.toml: {example:?}");
    assert!(example.contains(&("[[spam.rule]]".into(), "pattern".into())));
    assert!(example.contains(&("[maildir]".into(), "path".into())));
    let man = man_keys(&read(&repo().join("doc/man/secmail.toml.5")));
    let missing: Vec<String> = example
        .difference(&man)
        .map(|(s, k)| if k.is_empty() { format!("section {s}") } else { format!("{s} {k}") })
        .collect();
    assert!(
        missing.is_empty(),
        "doc/man/secmail.toml.5 does not describe (add \".TP\" + \".B key\" under \".SS [section]\"):\n  {}",
        missing.join("\n  ")
    );
}

/// The names in the `Commands:` list of a clap help text.
fn help_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn secmail_1_describes_every_subcommand() {
    let bin = env!("CARGO_BIN_EXE_secmail");
    let top = help_commands(&ok(Command::new(bin).arg("--help")));
    let case = help_commands(&ok(Command::new(bin).args(["case", "SEC-1", "--help"])));
    assert!(top.len() >= 10 && top.contains(&"completions".to_string()), "{top:?}");
    assert!(case.len() >= 15, "{case:?}");
    let roff = read(&repo().join("doc/man/secmail.1"));
    // A command is described by a tag line: ".TP" then ".B name ..." or
    // ".BI name ..." (roff escapes hyphens as "\-").
    let tagged: BTreeSet<String> = roff
        .lines()
        .zip(roff.lines().skip(1))
        .filter(|(a, _)| *a == ".TP")
        .filter_map(|(_, b)| b.split_whitespace().nth(1))
        .map(|w| w.replace("\\-", "-").trim_matches('"').to_string())
        .collect();
    let missing: Vec<&String> = top.iter().chain(&case).filter(|c| !tagged.contains(*c)).collect();
    assert!(missing.is_empty(), "doc/man/secmail.1 does not describe: {missing:?}");
    for section in [".SH EXIT STATUS", ".SH FILES", ".SH ENVIRONMENT"] {
        assert!(roff.contains(section), "secmail(1) lacks {section}");
    }
}

#[test]
fn man_pages_format_without_warnings() {
    if run(Command::new("sh").args(["-c", "command -v groff"])).stdout.is_empty() {
        println!("SKIPPED: groff is not installed (Debian: groff-base), the roff is not checked");
        return;
    }
    for page in ["doc/man/secmail.1", "doc/man/secmail.toml.5"] {
        let out = run(Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(repo().join(page)));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.trim().is_empty(), "groff warns about {page}:\n{stderr}");
    }
}

#[test]
fn parsers_of_this_test() {
    let keys = config_keys("[a]\nx = 1\n# y = 2\n# [b]\n# z = \"[c]\"\n[[d.e]]\nw = 1\n# not a key: a = b\n#   spf=fail +2\n");
    let want: BTreeSet<(String, String)> = [("[a]", ""), ("[a]", "x"), ("[a]", "y"), ("[b]", ""), ("[b]", "z"), ("[[d.e]]", ""), ("[[d.e]]", "w")]
        .into_iter()
        .map(|(s, k)| (s.to_string(), k.to_string()))
        .collect();
    assert_eq!(keys, want);
    let man = man_keys(".SS [a]\n.TP\n.B x\ntext\n.B notkey\n.TP\n.B y\n.TQ\n.B z\n");
    assert!(man.contains(&("[a]".into(), "x".into())) && man.contains(&("[a]".into(), "z".into())));
    assert!(!man.contains(&("[a]".into(), "notkey".into())));
    assert_eq!(help_commands("Usage: x\n\nCommands:\n  run   Run\n  help  Help\n\nOptions:\n  -h\n"), ["run"]);
}
