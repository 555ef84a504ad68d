//! `wharf new NAME`: scaffolds a component crate that builds and serves on the
//! first try (SPEC §6). Inside a Wharf repository the crate goes to
//! `components/NAME/` and its entry is appended to `components.toml`;
//! anywhere else it is a cargo project of its own with its own manifest.
//! Every check runs before the first write, so a refusal writes nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::manifest::{ComponentName, Manifest};

/// The files of a new component; `@key@` marks what [`render`] fills in.
mod template {
    pub(super) const LIB: &str = include_str!("../templates/new/lib.rs.tmpl");
    pub(super) const LIB_PLAIN: &str = include_str!("../templates/new/lib-plain.rs.tmpl");
    pub(super) const CARGO_IN_REPO: &str = include_str!("../templates/new/Cargo.toml.in-repo.tmpl");
    pub(super) const CARGO_STANDALONE: &str = include_str!("../templates/new/Cargo.toml.standalone.tmpl");
    pub(super) const OPENAPI: &str = include_str!("../templates/new/openapi.json.tmpl");
    pub(super) const MANIFEST_ENTRY: &str = include_str!("../templates/new/manifest-entry.toml.tmpl");
    pub(super) const MANIFEST: &str = include_str!("../templates/new/components.toml.tmpl");
    pub(super) const GITIGNORE: &str = include_str!("../templates/new/gitignore.tmpl");
}

/// Where the Rust bindings to `wharf:host` live: the `wharf-guest` crate of
/// the repository this binary was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCrate {
    /// The crate's directory (absolute).
    pub dir: PathBuf,
    /// The repository's `Cargo.lock`, copied into standalone projects so they
    /// build with the dependency versions the repository is tested with.
    pub lockfile: Option<PathBuf>,
}

impl GuestCrate {
    /// The guest crate next to the sources of this binary, if they are still
    /// there (a binary copied elsewhere scaffolds without it).
    pub fn beside_this_binary() -> Option<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = repo.join("guest").canonicalize().ok()?;
        // The bindings are generated from `../wit` at build time.
        if !dir.join("Cargo.toml").is_file() || !repo.join("wit").is_dir() {
            return None;
        }
        let lockfile = repo.join("Cargo.lock").canonicalize().ok().filter(|p| p.is_file());
        Some(Self { dir, lockfile })
    }
}

/// What kind of project a component was scaffolded into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// A Wharf repository: `components/NAME/` plus an entry in its `components.toml`.
    Repository {
        /// The repository root (where `components.toml` is).
        root: PathBuf,
    },
    /// A cargo project of its own, `DIR/NAME/`, with its own `components.toml`.
    Standalone {
        /// The project directory.
        project: PathBuf,
        /// Whether it depends on `wharf-guest` (config and log) or on `wstd` only.
        with_guest: bool,
    },
}

/// A component `wharf new` created.
#[derive(Debug, Clone)]
pub struct Scaffolded {
    /// Its name.
    pub name: ComponentName,
    /// Where it went.
    pub layout: Layout,
    /// The files written, relative to the repository root or the project.
    pub files: Vec<PathBuf>,
}

/// `wharf new NAME --dir DIR`: scaffolds the component and prints the next steps.
pub fn run(name: &str, dir: &Path) -> anyhow::Result<()> {
    let done = scaffold(name, dir, GuestCrate::beside_this_binary().as_ref())?;
    print!("{}", done.next_steps(&wharf_command()));
    Ok(())
}

/// Creates component `name` in `dir`: in its `components/` when `dir` is a
/// Wharf repository, else as the project `dir/name`. Refuses, writing
/// nothing, when the name is invalid or already taken.
pub fn scaffold(name: &str, dir: &Path, guest: Option<&GuestCrate>) -> anyhow::Result<Scaffolded> {
    let name = ComponentName::parse(name).map_err(anyhow::Error::msg)?;
    if is_repository(dir) { in_repository(&name, dir) } else { standalone(&name, dir, guest) }
}

/// A Wharf repository: a `components.toml` beside a `Cargo.toml` whose
/// workspace takes every crate under `components/`.
fn is_repository(dir: &Path) -> bool {
    if !dir.join("components.toml").is_file() {
        return false;
    }
    let Some(cargo) = read_toml(&dir.join("Cargo.toml")) else {
        return false;
    };
    workspace_members(&cargo).iter().any(|m| m.trim_start_matches("./").trim_end_matches('/') == "components/*")
}

fn in_repository(name: &ComponentName, root: &Path) -> anyhow::Result<Scaffolded> {
    let manifest_path = root.join("components.toml");
    let manifest_text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("failed to read `{}`", manifest_path.display()))?;
    let manifest: toml::Table = manifest_text.parse().with_context(|| {
        format!("`{}` is not valid TOML; fix it before adding a component", manifest_path.display())
    })?;
    if manifest.get("components").and_then(|c| c.get(name.as_str())).is_some() {
        bail!("`{}` already has a component `{name}`: choose another name", manifest_path.display());
    }
    let crate_dir = root.join("components").join(name.as_str());
    if crate_dir.symlink_metadata().is_ok() {
        bail!("`{}` already exists: choose another name, or remove it first", crate_dir.display());
    }
    if let Some(cargo) = read_toml(&root.join("Cargo.toml")) {
        let wanted = crate_name(name.as_str());
        for (package, at) in workspace_packages(root, &cargo) {
            if crate_name(&package) == wanted {
                bail!(
                    "the workspace already has a package named `{package}` (`{}`), which would clash with \
                     component `{name}`'s crate: choose another name",
                    at.display()
                );
            }
        }
    }

    let vars = Vars::new(name, None);
    let separator = if manifest_text.is_empty() || manifest_text.ends_with("\n\n") {
        ""
    } else if manifest_text.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    let entry = format!("{separator}{}", render(template::MANIFEST_ENTRY, &vars));
    // The manifest as the host will read it: a name whose route overlaps
    // another component's (or a host path) is refused now, not at serve time.
    Manifest::parse(&manifest_path, &format!("{manifest_text}{entry}"))
        .map_err(|e| anyhow::anyhow!("cannot add component `{name}`: `components.toml` would not load with it: {e}"))?;

    let files = [
        ("Cargo.toml", render(template::CARGO_IN_REPO, &vars)),
        ("src/lib.rs", render(template::LIB, &vars)),
        ("openapi.json", render(template::OPENAPI, &vars)),
    ];
    write_crate(&crate_dir, &files)?;
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .open(&manifest_path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, entry.as_bytes()));
    if let Err(e) = appended {
        let _ = std::fs::remove_dir_all(&crate_dir);
        return Err(e).with_context(|| format!("failed to append to `{}`", manifest_path.display()));
    }

    let prefix = Path::new("components").join(name.as_str());
    let mut written: Vec<PathBuf> = files.iter().map(|(path, _)| prefix.join(path)).collect();
    written.push(PathBuf::from("components.toml"));
    Ok(Scaffolded { name: name.clone(), layout: Layout::Repository { root: absolute(root) }, files: written })
}

fn standalone(name: &ComponentName, dir: &Path, guest: Option<&GuestCrate>) -> anyhow::Result<Scaffolded> {
    let project = dir.join(name.as_str());
    if project.symlink_metadata().is_ok() {
        bail!("`{}` already exists: choose another name or directory", project.display());
    }
    let vars = Vars::new(name, guest);
    let lib = if guest.is_some() { template::LIB } else { template::LIB_PLAIN };
    let files = [
        ("Cargo.toml", render(template::CARGO_STANDALONE, &vars)),
        ("src/lib.rs", render(lib, &vars)),
        ("openapi.json", render(template::OPENAPI, &vars)),
        ("components.toml", render(template::MANIFEST, &vars)),
        (".gitignore", render(template::GITIGNORE, &vars)),
    ];
    write_crate(&project, &files)?;
    let mut written: Vec<PathBuf> = files.iter().map(|(path, _)| PathBuf::from(path)).collect();
    if let Some(lockfile) = guest.and_then(|g| g.lockfile.as_ref()) {
        let copied = std::fs::copy(lockfile, project.join("Cargo.lock"));
        if let Err(e) = copied {
            let _ = std::fs::remove_dir_all(&project);
            return Err(e).with_context(|| format!("failed to copy `{}`", lockfile.display()));
        }
        written.push(PathBuf::from("Cargo.lock"));
    }
    Ok(Scaffolded {
        name: name.clone(),
        layout: Layout::Standalone { project: absolute(&project), with_guest: guest.is_some() },
        files: written,
    })
}

/// Creates `dir` (which must not exist) with `files`; on failure removes it again.
fn write_crate(dir: &Path, files: &[(&str, String)]) -> anyhow::Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("failed to create `{}`", parent.display()))?;
    }
    std::fs::create_dir(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
    let written = files.iter().try_for_each(|(path, text)| {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(dir);
        return Err(e).with_context(|| format!("failed to write the component's files in `{}`", dir.display()));
    }
    Ok(())
}

/// What the templates' `@key@` markers stand for.
struct Vars(Vec<(&'static str, String)>);

impl Vars {
    fn new(name: &ComponentName, guest: Option<&GuestCrate>) -> Self {
        let guest_dependency = match guest {
            Some(guest) => {
                format!(
                    "wharf-guest = {{ path = {}, features = [\"reply\"] }}",
                    toml_string(&guest.dir.display().to_string())
                )
            }
            None => "# wharf:host (config, log, store, queue, hub): add the Wharf repository's guest crate,\n\
                     # wharf-guest = { path = \"/path/to/wharf/guest\" }"
                .to_owned(),
        };
        let grants = if guest.is_some() {
            "grants = { interfaces = [\"config\", \"log\"] }\nconfig = { greeting = \"Hello\" }\n"
        } else {
            ""
        };
        Self(vec![
            ("name", name.as_str().to_owned()),
            ("lib_name", crate_name(name.as_str())),
            ("operation_id", operation_id(name.as_str())),
            ("guest_dependency", guest_dependency),
            ("grants", grants.to_owned()),
        ])
    }
}

fn render(template: &str, vars: &Vars) -> String {
    vars.0.iter().fold(template.to_owned(), |text, (key, value)| text.replace(&format!("@{key}@"), value))
}

/// The crate (and `.wasm`) name cargo derives from a package name.
fn crate_name(package: &str) -> String {
    package.replace('-', "_")
}

/// `demo-app` → `demoAppGreet`, unique in the merged `/openapi.json`.
fn operation_id(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        match c {
            '-' | '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out.push_str("Greet");
    out
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn read_toml(path: &Path) -> Option<toml::Table> {
    std::fs::read_to_string(path).ok()?.parse().ok()
}

fn workspace_members(cargo: &toml::Table) -> Vec<String> {
    let members = cargo.get("workspace").and_then(|w| w.get("members")).and_then(toml::Value::as_array);
    members.into_iter().flatten().filter_map(|m| m.as_str().map(str::to_owned)).collect()
}

/// The packages of the workspace at `root` and where each is, for the
/// member forms a repository uses: `dir` and `dir/*`.
fn workspace_packages(root: &Path, cargo: &toml::Table) -> Vec<(String, PathBuf)> {
    let mut dirs = vec![root.to_owned()];
    for member in workspace_members(cargo) {
        match member.strip_suffix("/*") {
            Some(parent) => {
                let entries = std::fs::read_dir(root.join(parent)).into_iter().flatten().flatten();
                dirs.extend(entries.map(|e| e.path()));
            }
            None => dirs.push(root.join(member)),
        }
    }
    dirs.into_iter()
        .filter_map(|dir| {
            let package = read_toml(&dir.join("Cargo.toml"))?;
            let name = package.get("package")?.get("name")?.as_str()?.to_owned();
            Some((name, dir))
        })
        .collect()
}

fn absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

/// How to run this `wharf` again: `wharf` when that is what `PATH` finds,
/// else the full path of this binary.
fn wharf_command() -> String {
    let Some(exe) = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok()) else {
        return "wharf".to_owned();
    };
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("wharf")).find(|p| p.is_file()))
        .and_then(|p| p.canonicalize().ok());
    if on_path.as_ref() == Some(&exe) { "wharf".to_owned() } else { shell_word(&exe.display().to_string()) }
}

/// `text` as one shell word.
fn shell_word(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@=,".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

impl Scaffolded {
    /// What was created and what to run next, for a person; `wharf` is how
    /// to invoke this binary.
    pub fn next_steps(&self, wharf: &str) -> String {
        let name = &self.name;
        let (dir, build) = match &self.layout {
            Layout::Repository { root } => {
                (root, format!("cargo build --release --target wasm32-wasip2 -p {}", shell_word(name.as_str())))
            }
            Layout::Standalone { project, .. } => (project, "cargo build --release --target wasm32-wasip2".to_owned()),
        };
        let mut out = String::new();
        let _ = writeln!(out, "Created component `{name}` in {}:", dir.display());
        for file in &self.files {
            let note = if file == Path::new("components.toml") {
                match self.layout {
                    Layout::Repository { .. } => format!("  (added [components.{name}])"),
                    Layout::Standalone { .. } => "  (serves this component only)".to_owned(),
                }
            } else {
                String::new()
            };
            let _ = writeln!(out, "  {}{note}", file.display());
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Next steps (once per machine: rustup target add wasm32-wasip2):");
        let _ = writeln!(out, "  cd {}", shell_word(&dir.display().to_string()));
        let _ = writeln!(out, "  {build}");
        let _ = writeln!(out, "  {wharf} serve");
        let _ = writeln!(out, "  curl -i http://127.0.0.1:8080/{name}/");
        let _ = writeln!(out);
        let _ = writeln!(out, "After a change, rebuild and swap it into the running host (same directory):");
        let _ = writeln!(out, "  {build}");
        let _ = writeln!(out, "  {wharf} reload {name}");
        if let Layout::Standalone { with_guest: false, .. } = self.layout {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "note: the Wharf guest crate (wharf-guest) was not found beside this `wharf`, so `{name}` uses \
                 wstd only: it reads no config and writes no log through wharf:host (and so also runs on \
                 `wasmtime serve -Scli`). Cargo.toml says how to add it."
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\nmembers = [\"host\", \"components/*\"]\n").unwrap();
        std::fs::write(
            dir.path().join("components.toml"),
            "[components.api]\nwasm = \"api.wasm\"\nroutes = [{ path = \"/api/*\" }]\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("host")).unwrap();
        std::fs::write(dir.path().join("host/Cargo.toml"), "[package]\nname = \"wharf-host\"\n").unwrap();
        dir
    }

    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(d).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((path.clone(), std::fs::read(path).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_template_marker_is_filled() {
        let name = ComponentName::parse("demo-app").unwrap();
        let guest = GuestCrate { dir: PathBuf::from("/x/guest"), lockfile: None };
        for guest in [Some(&guest), None] {
            let vars = Vars::new(&name, guest);
            for t in [
                template::LIB,
                template::LIB_PLAIN,
                template::CARGO_IN_REPO,
                template::CARGO_STANDALONE,
                template::OPENAPI,
                template::MANIFEST_ENTRY,
                template::MANIFEST,
            ] {
                let text = render(t, &vars);
                for key in ["@name@", "@lib_name@", "@operation_id@", "@guest_dependency@", "@grants@"] {
                    assert!(!text.contains(key), "{key} left in:\n{text}");
                }
            }
            let openapi: serde_json::Value = serde_json::from_str(&render(template::OPENAPI, &vars)).unwrap();
            assert_eq!(openapi["paths"]["/demo-app/"]["get"]["operationId"], "demoAppGreet");
        }
    }

    #[test]
    fn standalone_without_the_guest_crate_uses_wstd_only_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let done = scaffold("plain", dir.path(), None).unwrap();
        assert_eq!(done.layout, Layout::Standalone { project: absolute(&dir.path().join("plain")), with_guest: false });
        let project = dir.path().join("plain");
        assert!(!std::fs::read_to_string(project.join("src/lib.rs")).unwrap().contains("wharf_guest"));
        let cargo: toml::Table = std::fs::read_to_string(project.join("Cargo.toml")).unwrap().parse().unwrap();
        assert!(cargo["dependencies"].get("wharf-guest").is_none());
        let manifest = Manifest::load(&project.join("components.toml")).unwrap();
        let spec = &manifest.components[&ComponentName::parse("plain").unwrap()];
        assert!(spec.grants.interfaces.is_empty());
        assert!(done.next_steps("wharf").contains("wstd only"));
    }

    #[test]
    fn refuses_a_route_that_overlaps_and_writes_nothing() {
        let repo = fake_repo();
        let before = snapshot(repo.path());
        let error = scaffold("api", repo.path(), None).unwrap_err().to_string();
        assert!(error.contains("already has a component `api`"), "{error}");
        // `/healthz/*` belongs to the host.
        let error = scaffold("healthz", repo.path(), None).unwrap_err().to_string();
        assert!(error.contains("would not load"), "{error}");
        assert_eq!(snapshot(repo.path()), before);
    }

    #[test]
    fn refuses_a_name_another_workspace_package_has() {
        let repo = fake_repo();
        let before = snapshot(repo.path());
        let error = scaffold("wharf_host", repo.path(), None).unwrap_err().to_string();
        assert!(error.contains("package named `wharf-host`"), "{error}");
        assert_eq!(snapshot(repo.path()), before);
    }

    #[test]
    fn appended_entry_keeps_the_manifest_loadable() {
        let repo = fake_repo();
        scaffold("shop", repo.path(), None).unwrap();
        let manifest = Manifest::load(&repo.path().join("components.toml")).unwrap();
        let shop = &manifest.components[&ComponentName::parse("shop").unwrap()];
        assert!(shop.wasm.ends_with("target/wasm32-wasip2/release/shop.wasm"));
        assert!(repo.path().join("components/shop/src/lib.rs").is_file());
    }

    #[test]
    fn operation_ids_are_camel_case() {
        assert_eq!(operation_id("shop"), "shopGreet");
        assert_eq!(operation_id("my_big-app2"), "myBigApp2Greet");
    }
}
