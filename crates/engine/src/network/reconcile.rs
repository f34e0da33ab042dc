//! The network at daemon start and stop. At the start, what a daemon before this one left is
//! reconciled with the containers still running: their endpoints, addresses and ports are
//! kept, every other namespace, veth and record removed, records of the previous version
//! migrated. At the stop, with no container running, the bridges and the rules go.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use wharf_metadata::Table;
use wharf_network::sandbox;

use super::endpoint::{migrate_endpoint, Endpoint};
use super::lock;
use super::networks::NetworkRecord;
use super::ports::{bind_port, parse_port_proto};
use crate::{blocking, Engine, EngineError};

impl Engine {
    /// At daemon start: keeps the endpoints of running containers (their addresses and ports
    /// stay theirs), removes every other namespace, veth and record, and rewrites the rules.
    /// Records of the previous version (one per container, keyed by its id) are rewritten
    /// under their per-network key.
    pub(crate) fn network_reconcile(&self, running: &BTreeSet<String>) -> Result<(), EngineError> {
        self.restore_networks()?;
        let stored: Vec<(String, Endpoint)> = self.inner.db.list(Table::Endpoints)?;
        let mut keep: Vec<Endpoint> = Vec::new();
        let mut migrate: Vec<(String, Endpoint)> = Vec::new();
        let mut gone: BTreeSet<String> = BTreeSet::new();
        for (key, ep) in stored {
            let internal = lock(&self.net().networks).get(&ep.network_id).is_some_and(|n| n.internal);
            let (ep, legacy) = migrate_endpoint(&key, ep, internal);
            if !running.contains(&ep.container) {
                gone.insert(ep.container);
                continue;
            }
            if legacy {
                migrate.push((key, ep.clone()));
            }
            keep.push(ep);
        }
        for id in gone {
            log::info!("container {id}: removing network left from before");
            if let Err(e) = self.network_release(&id) {
                log::warn!("{e}");
            }
        }
        if !migrate.is_empty() {
            self.write_db(|tx| -> Result<(), wharf_metadata::MetadataError> {
                for (old, ep) in &migrate {
                    tx.delete(Table::Endpoints, old)?;
                    tx.put(Table::Endpoints, &ep.key(), ep)?;
                }
                Ok(())
            })?;
            log::info!("migrated {} network endpoint records to one per network", migrate.len());
        }
        if let Ok(entries) = std::fs::read_dir(self.inner.config.exec_root.join("netns")) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !keep.iter().any(|k| k.container == id) {
                    let _ = sandbox::remove(&e.path(), None);
                }
            }
        }
        let any_bridge = keep.iter().any(|e| e.network == "bridge");
        if any_bridge {
            self.net().ensure_default_bridge()?;
        }
        {
            let mut st = lock(&self.net().state);
            for ep in keep {
                let id = ep.container.clone();
                let mut res = Vec::new();
                for p in &ep.ports {
                    let ip: IpAddr = p.host_ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                    let Ok((cport, proto)) = parse_port_proto(&p.container_port) else { continue };
                    match bind_port(ip, p.host_port, &proto, cport) {
                        Ok((r, _)) => res.push(r),
                        Err(e) => log::warn!("container {id}: reserve port {ip}:{} again: {e}", p.host_port),
                    }
                }
                st.reservations.entry(id).or_default().extend(res);
                st.endpoints.insert(ep.key(), ep);
            }
        }
        let ids: BTreeSet<String> = lock(&self.net().state).reservations.keys().cloned().collect();
        for id in ids {
            self.start_proxies(&id);
        }
        if any_bridge || !lock(&self.net().networks).is_empty() {
            self.apply_rules()?;
        } else {
            // A table left by a daemon before this one, whose networks are all gone.
            self.net().remove_ip6_table();
            self.net().remove_bridge_table();
        }
        Ok(())
    }

    pub(crate) async fn reconcile_network(&self) -> Result<(), EngineError> {
        let running: BTreeSet<String> =
            self.all_containers().iter().filter(|r| r.state.running).map(|r| r.id.clone()).collect();
        let engine = self.clone();
        blocking(move || engine.network_reconcile(&running)).await
    }

    /// At daemon stop with no container running: the bridge and the rules go too.
    pub(crate) fn network_shutdown(&self) {
        let user: Vec<NetworkRecord> = lock(&self.net().networks).values().cloned().collect();
        for n in user {
            self.tear_down_network(&n);
        }
        if self.net().config.iptables {
            if let Err(e) = wharf_network::nft::delete_table(&self.net().table) {
                log::warn!("{e}");
            }
            self.net().remove_ip6_table();
            self.net().remove_bridge_table();
        }
        if let Err(e) = sandbox::remove_bridge(&self.net().config.bridge) {
            log::warn!("{e}");
        }
        let _ = std::fs::remove_dir(self.inner.config.exec_root.join("netns"));
    }
}
