//! A shard's own read copy of the registry.
//!
//! Only the shard's thread touches it, so lookups are plain hash-map reads. Entries are reference
//! counted so an in-flight request can keep the instance list it chose from while the shard applies
//! newer changes (copy on write).

use std::rc::Rc;

use rustc_hash::FxHashMap;

use crate::names::{Address, InstanceId, ServiceName};
use crate::registry::Change;

/// One instance as a shard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEntry {
    /// Name.
    pub id: InstanceId,
    /// Where it listens.
    pub address: Address,
}

/// One service and its instances, ordered by instance name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Name.
    pub name: ServiceName,
    /// Instances, sorted by id.
    pub instances: Vec<InstanceEntry>,
}

/// The shard's registry copy.
#[derive(Debug, Default)]
pub struct RegistryView {
    services: FxHashMap<ServiceName, Rc<ServiceEntry>>,
}

impl RegistryView {
    /// The service called `name`, if registered.
    pub fn get(&self, name: &str) -> Option<&Rc<ServiceEntry>> {
        self.services.get(name)
    }

    /// Applies one change from the owner. Returns whether an address went out of use by the
    /// instance changed: it was removed, or moved to another address. Then the shard's pools
    /// for addresses no instance uses any more can go ([`crate::shard`]); an instance registered
    /// again at its address (a heartbeat) changes nothing, and keeps the address the shard's
    /// pool is keyed by, whose clones compare equal by pointer.
    pub fn apply(&mut self, change: Change) -> bool {
        match change {
            Change::Upsert(record) => {
                let same = self.services.get(&record.service).is_some_and(|entry| {
                    entry
                        .instances
                        .binary_search_by(|i| i.id.cmp(&record.instance))
                        .is_ok_and(|at| entry.instances[at].address == record.address)
                });
                if same {
                    return false;
                }
                let entry = self
                    .services
                    .entry(record.service.clone())
                    .or_insert_with(|| {
                        Rc::new(ServiceEntry {
                            name: record.service.clone(),
                            instances: Vec::new(),
                        })
                    });
                let entry = Rc::make_mut(entry);
                let new = InstanceEntry {
                    id: record.instance,
                    address: record.address,
                };
                match entry.instances.binary_search_by(|i| i.id.cmp(&new.id)) {
                    Ok(at) => {
                        entry.instances[at] = new;
                        true
                    }
                    Err(at) => {
                        entry.instances.insert(at, new);
                        false
                    }
                }
            }
            Change::Remove { service, instance } => {
                let Some(entry) = self.services.get_mut(&service) else {
                    return false;
                };
                let Ok(at) = entry.instances.binary_search_by(|i| i.id.cmp(&instance)) else {
                    return false;
                };
                Rc::make_mut(entry).instances.remove(at);
                if entry.instances.is_empty() {
                    self.services.remove(&service);
                }
                true
            }
        }
    }

    /// Every service, sorted by name.
    pub fn services(&self) -> Vec<Rc<ServiceEntry>> {
        let mut all: Vec<_> = self.services.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Number of registered instances.
    pub fn instance_count(&self) -> usize {
        self.services.values().map(|s| s.instances.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::InstanceRecord;

    fn upsert(service: &str, id: &str, port: u16) -> Change {
        Change::Upsert(InstanceRecord {
            service: ServiceName::parse(service).unwrap(),
            instance: InstanceId::parse(id).unwrap(),
            address: Address::parse(&format!("127.0.0.1:{port}")).unwrap(),
        })
    }

    #[test]
    fn upsert_replace_remove() {
        let mut view = RegistryView::default();
        assert!(!view.apply(upsert("users", "u2", 2)), "a new instance");
        assert!(!view.apply(upsert("users", "u1", 1)));
        let held = view.get("users").unwrap().clone();
        assert!(view.apply(upsert("users", "u1", 3)), "u1 left port 1");
        let ids: Vec<_> = view
            .get("users")
            .unwrap()
            .instances
            .iter()
            .map(|i| i.address.sockets()[0].port())
            .collect();
        assert_eq!(ids, [3, 2]);
        // The copy a request held is unchanged.
        assert_eq!(held.instances[0].address.sockets()[0].port(), 1);
        let remove = |id: &str| Change::Remove {
            service: ServiceName::parse("users").unwrap(),
            instance: InstanceId::parse(id).unwrap(),
        };
        assert!(view.apply(remove("u1")));
        assert!(!view.apply(remove("u1")), "not there any more");
        assert!(view.apply(remove("u2")));
        assert!(view.get("users").is_none());
        assert_eq!(view.instance_count(), 0);
    }

    #[test]
    fn an_instance_registered_again_at_its_address_changes_nothing() {
        let mut view = RegistryView::default();
        view.apply(upsert("users", "u1", 1));
        let before = view.get("users").unwrap().clone();
        assert!(!view.apply(upsert("users", "u1", 1)));
        // The entry was not copied (a request holding it would have forced a copy of the list),
        // and its address is the one the shard's pool was keyed by.
        assert!(Rc::ptr_eq(&before, view.get("users").unwrap()));
    }
}
