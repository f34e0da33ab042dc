//! Pod networking through CNI plugins, as libcni runs them: the first configuration of the
//! conf dir in name order (`.conflist`, or a single-plugin `.conf`/`.json`), each plugin
//! executed from the bin dirs with the CNI_* environment and its config (plus `name`,
//! `cniVersion`, `prevResult` and the `runtimeConfig` its `capabilities` ask for) on stdin.
//! ADD runs the plugins in order, DEL in reverse with the result ADD gave; what ADD gave is
//! kept (`<data-root>/cri/net/<sandbox>.json`, written atomically) so that DEL after a restart
//! uses the same configuration and result even if the conf dir changed meanwhile.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long one plugin may take.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The interface CNI makes in the pod, as kubelet's other runtimes name it.
pub const IFNAME: &str = "eth0";

#[derive(Clone)]
pub struct Cni {
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
}

/// A network configuration list as loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
    /// The file it came from.
    pub file: String,
}

/// Who the pod is, for CNI_ARGS.
pub struct PodArgs<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
}

/// What a sandbox's ADD gave, kept until its DEL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub list: NetList,
    pub netns: String,
    pub args: String,
    pub result: Value,
    /// `runtimeConfig.portMappings`.
    pub port_mappings: Vec<Value>,
}

impl Attachment {
    /// The pod's addresses (without prefix length): those of the interface in the pod's
    /// namespace, else every address of the result.
    pub fn ips(&self) -> Vec<String> {
        let ifaces = self.result.get("interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
        let ips = self.result.get("ips").and_then(Value::as_array).cloned().unwrap_or_default();
        let in_pod = |ip: &Value| {
            let Some(i) = ip.get("interface").and_then(Value::as_u64) else { return false };
            ifaces
                .get(i as usize)
                .is_some_and(|f| f.get("sandbox").and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
        };
        let mut chosen: Vec<&Value> = ips.iter().filter(|ip| in_pod(ip)).collect();
        if chosen.is_empty() {
            chosen = ips.iter().collect();
        }
        chosen
            .iter()
            .filter_map(|ip| ip.get("address").and_then(Value::as_str))
            .map(|a| a.split_once('/').map_or(a, |(ip, _)| ip).to_string())
            .collect()
    }
}

fn parse_conf(path: &Path) -> Result<NetList, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", path.display()))?;
    let name = v.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if name.is_empty() {
        return Err(format!("{}: no network name", path.display()));
    }
    let cni_version = v.get("cniVersion").and_then(Value::as_str).unwrap_or("0.4.0").to_string();
    let plugins = if path.extension().is_some_and(|e| e == "conflist") {
        v.get("plugins").and_then(Value::as_array).cloned().unwrap_or_default()
    } else {
        vec![v.clone()]
    };
    if plugins.is_empty() {
        return Err(format!("{}: no plugins", path.display()));
    }
    for p in &plugins {
        if p.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(format!("{}: a plugin has no type", path.display()));
        }
    }
    Ok(NetList { name, cni_version, plugins, file: path.display().to_string() })
}

impl Cni {
    pub fn new(conf_dir: PathBuf, bin_dirs: Vec<PathBuf>) -> Cni {
        Cni { conf_dir, bin_dirs }
    }

    /// The configuration in force: the first good file in name order.
    pub fn load(&self) -> Result<NetList, String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.conf_dir)
            .map_err(|e| format!("cni config dir {}: {e}", self.conf_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "conf" || e == "conflist" || e == "json"))
            .collect();
        files.sort();
        let mut why = Vec::new();
        for f in files {
            match parse_conf(&f) {
                Ok(l) => {
                    for p in &l.plugins {
                        let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
                        self.plugin(kind)?;
                    }
                    return Ok(l);
                }
                Err(e) => why.push(e),
            }
        }
        if why.is_empty() {
            Err(format!("no network config found in {}", self.conf_dir.display()))
        } else {
            Err(why.join("; "))
        }
    }

    fn plugin(&self, kind: &str) -> Result<PathBuf, String> {
        if kind.contains('/') || kind == "." || kind == ".." {
            return Err(format!("cni plugin type {kind:?} is not a file name"));
        }
        self.bin_dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("cni plugin {kind:?} not found in {}", self.path_var()))
    }

    fn path_var(&self) -> String {
        self.bin_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
    }

    /// ADD of the pod's namespace to the network in force. On failure what was added is
    /// deleted again.
    pub fn add(&self, id: &str, netns: &Path, pod: &PodArgs, port_mappings: Vec<Value>) -> Result<Attachment, String> {
        let list = self.load()?;
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={id};K8S_POD_UID={}",
            pod.namespace, pod.name, pod.uid
        );
        let mut att = Attachment { list, netns: netns.display().to_string(), args, result: Value::Null, port_mappings };
        let mut prev: Option<Value> = None;
        for i in 0..att.list.plugins.len() {
            match self.exec(&att, i, "ADD", id, prev.as_ref()) {
                Ok(out) => prev = Some(out),
                Err(e) => {
                    att.result = prev.unwrap_or(Value::Null);
                    if let Err(d) = self.del(id, &att) {
                        log::warn!("cni: undoing a failed ADD of {id}: {d}");
                    }
                    return Err(e);
                }
            }
        }
        att.result = prev.unwrap_or(Value::Null);
        Ok(att)
    }

    /// DEL in reverse order; every plugin is run, and every failure reported at the end.
    pub fn del(&self, id: &str, att: &Attachment) -> Result<(), String> {
        let prev = if att.result.is_null() { None } else { Some(&att.result) };
        let mut errors = Vec::new();
        for i in (0..att.list.plugins.len()).rev() {
            if let Err(e) = self.exec(att, i, "DEL", id, prev) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn exec(
        &self,
        att: &Attachment,
        index: usize,
        command: &str,
        id: &str,
        prev: Option<&Value>,
    ) -> Result<Value, String> {
        let conf = plugin_config(att, index, prev)?;
        let kind = conf.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        let stdin = serde_json::to_vec(&conf).map_err(|e| format!("encode cni config: {e}"))?;
        let exe = self.plugin(&kind)?;
        let mut child = Command::new(&exe)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", &att.netns)
            .env("CNI_IFNAME", IFNAME)
            .env("CNI_ARGS", &att.args)
            .env("CNI_PATH", self.path_var())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("run cni plugin {}: {e}", exe.display()))?;
        if let Some(mut i) = child.stdin.take() {
            // A plugin that exits without reading its config closes the pipe: its exit says why.
            let _ = i.write_all(&stdin);
        }
        let read = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(r) = r {
                    let _ = r.take(16 << 20).read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = read(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
        let err = read(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
        let deadline = Instant::now() + PLUGIN_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("cni plugin {kind} {command} did not finish in {PLUGIN_TIMEOUT:?}"));
                }
                Err(e) => return Err(format!("wait for cni plugin {kind}: {e}")),
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if !status.success() {
            // Plugins report errors as {"code", "msg", "details"} on stdout.
            let msg = serde_json::from_slice::<Value>(&stdout)
                .ok()
                .and_then(|v| {
                    let m = v.get("msg").and_then(Value::as_str)?.to_string();
                    let d = v.get("details").and_then(Value::as_str).unwrap_or_default();
                    Some(if d.is_empty() { m } else { format!("{m}: {d}") })
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&stderr).trim().to_string());
            return Err(format!("cni plugin {kind} {command} failed ({status}): {msg}"));
        }
        if command == "DEL" || stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(prev.cloned().unwrap_or(Value::Null));
        }
        serde_json::from_slice(&stdout).map_err(|e| format!("cni plugin {kind} {command}: bad result: {e}"))
    }
}

/// What a plugin reads on stdin: its entry of the list with the list's `name` and
/// `cniVersion`, the previous result, and the `runtimeConfig` its `capabilities` ask for.
fn plugin_config(att: &Attachment, index: usize, prev: Option<&Value>) -> Result<Value, String> {
    let list = &att.list;
    let Some(conf) = list.plugins.get(index) else { return Err(format!("no plugin {index}")) };
    let mut conf = conf.clone();
    if let Some(o) = conf.as_object_mut() {
        o.insert("name".into(), json!(list.name));
        o.insert("cniVersion".into(), json!(list.cni_version));
        if let Some(p) = prev {
            o.insert("prevResult".into(), p.clone());
        }
        let wants_ports =
            o.get("capabilities").and_then(|c| c.get("portMappings")).and_then(Value::as_bool).unwrap_or(false);
        if wants_ports && !att.port_mappings.is_empty() {
            o.insert("runtimeConfig".into(), json!({ "portMappings": att.port_mappings }));
        }
    }
    Ok(conf)
}

/// Where a sandbox's attachment is kept.
pub fn attachment_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("net").join(format!("{id}.json"))
}

/// Writes the attachment atomically (temporary file, fsync, rename, fsync of the directory).
pub fn save(state_dir: &Path, id: &str, att: &Attachment) -> Result<(), String> {
    let path = attachment_path(state_dir, id);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{id}.tmp"));
    let bytes = serde_json::to_vec(att).map_err(|e| format!("encode attachment: {e}"))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    write().map_err(|e| format!("write {}: {e}", path.display()))
}

pub fn load_attachment(state_dir: &Path, id: &str) -> Option<Attachment> {
    let bytes = std::fs::read(attachment_path(state_dir, id)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn forget(state_dir: &Path, id: &str) {
    let _ = std::fs::remove_file(attachment_path(state_dir, id));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(result: Value) -> Attachment {
        Attachment {
            list: NetList { name: "n".into(), cni_version: "1.0.0".into(), plugins: vec![], file: String::new() },
            netns: String::new(),
            args: String::new(),
            result,
            port_mappings: vec![],
        }
    }

    #[test]
    fn pod_ips_are_those_of_the_pod_interface() {
        let r = json!({
            "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"address": "10.9.0.1/24", "interface": 0}, {"address": "10.9.0.5/24", "interface": 2}]
        });
        assert_eq!(att(r).ips(), vec!["10.9.0.5".to_string()]);
        let bare = json!({"ips": [{"address": "10.9.0.7/16"}]});
        assert_eq!(att(bare).ips(), vec!["10.9.0.7".to_string()]);
        assert!(att(Value::Null).ips().is_empty());
    }

    #[test]
    fn plugins_get_the_list_name_version_previous_result_and_the_ports_they_ask_for() {
        let mut a = att(Value::Null);
        a.list.plugins =
            vec![json!({"type": "bridge"}), json!({"type": "portmap", "capabilities": {"portMappings": true}})];
        a.port_mappings = vec![json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""})];
        let first = plugin_config(&a, 0, None).unwrap();
        assert_eq!(first, json!({"type": "bridge", "name": "n", "cniVersion": "1.0.0"}));
        let prev = json!({"ips": []});
        let second = plugin_config(&a, 1, Some(&prev)).unwrap();
        assert_eq!(second["prevResult"], prev);
        assert_eq!(second["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert!(plugin_config(&a, 2, None).is_err());
    }

    #[test]
    fn configs_load_in_name_order_and_need_their_plugins() {
        let dir = std::env::temp_dir().join(format!("wharf-cni-test-{}", std::process::id()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("bridge"), "").unwrap();
        std::fs::write(dir.join("20-b.conflist"), r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}"#)
            .unwrap();
        std::fs::write(dir.join("10-a.conf"), r#"{"cniVersion":"0.4.0","name":"a","type":"bridge"}"#).unwrap();
        std::fs::write(dir.join("00-bad.conf"), "{").unwrap();
        let cni = Cni::new(dir.clone(), vec![bin.clone()]);
        let l = cni.load().unwrap();
        assert_eq!((l.name.as_str(), l.plugins.len()), ("a", 1));
        std::fs::write(dir.join("05-c.conflist"), r#"{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"nope"}]}"#)
            .unwrap();
        assert!(cni.load().unwrap_err().contains("\"nope\" not found"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
