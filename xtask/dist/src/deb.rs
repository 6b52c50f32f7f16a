//! The `.deb`, through `tauri-bundler` as a library.
//!
//! The bundler does not read `tauri.conf.json` itself: [`settings`] maps the `bundle` section
//! the way the Tauri CLI does for the fields Quire uses, and adds what the CLI adds on its own
//! (the Depends of the binary). The bundler's `.deb` path downloads nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use tauri_bundler::bundle::{
    AppCategory, BundleBinary, BundleSettings, DebianSettings, PackageSettings, PackageType,
    Settings, SettingsBuilder,
};
use tauri_utils::config::Config;

/// A built `.deb` and the tree the bundler staged it from (its `data/`, the installed files).
pub struct Deb {
    pub package: PathBuf,
    pub staged: PathBuf,
}

/// Packages `binary` (named as the app's main binary, in the directory the packages go
/// below) as `bundle/deb/<product>_<version>_<arch>.deb`.
pub fn build(config: &Config, binary: &Path) -> Result<Deb> {
    let settings = settings(config, binary)?;
    let bundles = tauri_bundler::bundle_project(&settings).context("building the .deb")?;
    let package = bundles
        .into_iter()
        .flat_map(|bundle| bundle.bundle_paths)
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .context("the bundler made no .deb")?;
    let staged = package.with_extension("").join("data");
    if !staged.join("usr/bin").is_dir() {
        bail!("the bundler left no staged tree at {}", staged.display());
    }
    Ok(Deb { package, staged })
}

/// The bundler's settings. The binary goes in as built, without the bundle-type marker the
/// bundler would patch into it (only Tauri's updater reads it, and Quire has none), so the
/// package holds byte for byte the binary the window tests run.
fn settings(config: &Config, binary: &Path) -> Result<Settings> {
    let bundle = &config.bundle;
    let deb = &bundle.linux.deb;
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .context("the app binary has no UTF-8 file name")?;
    let out_dir = binary.parent().context("the app binary has no directory")?;
    let category = bundle
        .category
        .as_deref()
        .map(AppCategory::from_str)
        .transpose()
        .map_err(|closest| {
            anyhow::anyhow!("bundle.category is not a category Tauri knows (closest: {closest:?})")
        })?;
    SettingsBuilder::new()
        .project_out_directory(out_dir)
        .package_types(vec![PackageType::Deb])
        .package_settings(PackageSettings {
            product_name: crate::product_name(config)?.to_owned(),
            version: crate::version(config)?.to_owned(),
            description: bundle.short_description.clone().unwrap_or_default(),
            homepage: bundle.homepage.clone(),
            authors: bundle.publisher.clone().map(|p| vec![p]),
            default_run: Some(name.to_owned()),
        })
        .bundle_settings(BundleSettings {
            identifier: Some(config.identifier.clone()),
            publisher: bundle.publisher.clone(),
            homepage: bundle.homepage.clone(),
            icon: Some(bundle.icon.clone()),
            copyright: bundle.copyright.clone(),
            license: bundle.license.clone(),
            category,
            file_associations: bundle.file_associations.clone(),
            short_description: bundle.short_description.clone(),
            long_description: bundle.long_description.clone(),
            deb: DebianSettings {
                depends: Some(depends(binary, deb.depends.as_deref().unwrap_or_default())?),
                recommends: deb.recommends.clone(),
                files: deb.files.clone(),
                desktop_template: deb.desktop_template.clone(),
                section: deb.section.clone(),
                priority: deb.priority.clone(),
                changelog: deb.changelog.clone(),
                ..DebianSettings::default()
            },
            ..BundleSettings::default()
        })
        .binaries(vec![BundleBinary::new(name.to_owned(), true)])
        .binary_patching(false)
        .build()
        .context("the bundler's settings")
}

/// The shared libraries the binary links, as Debian package dependencies with the minimum
/// versions its symbols need (`dpkg-shlibdeps`, what Debian's own packages use), then
/// `extra` from `bundle.linux.deb.depends`.
fn depends(binary: &Path, extra: &[String]) -> Result<Vec<String>> {
    // dpkg-shlibdeps reads debian/control from its working directory.
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("debian"))?;
    std::fs::write(
        dir.path().join("debian/control"),
        "Source: quire\n\nPackage: quire\nArchitecture: any\n",
    )?;
    let mut e = std::ffi::OsString::from("-e");
    e.push(binary);
    let out = Command::new("dpkg-shlibdeps")
        .args([std::ffi::OsStr::new("-O"), &e])
        .current_dir(dir.path())
        .output()
        .context("running dpkg-shlibdeps (Debian's dpkg-dev; `cargo xtask setup` installs it)")?;
    if !out.status.success() {
        bail!(
            "dpkg-shlibdeps failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8(out.stdout)?;
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .context("dpkg-shlibdeps printed no shlibs:Depends")?;
    let mut depends: Vec<String> = line.split(", ").map(str::to_owned).collect();
    depends.extend(extra.iter().cloned());
    Ok(depends)
}
