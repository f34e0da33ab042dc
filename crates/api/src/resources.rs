//! The resource fields of a create request's HostConfig that `wharf_engine::ResourceOptions`
//! keeps (MemoryReservation, MemorySwappiness, KernelMemory, CpuRealtime*, Blkio*,
//! StorageOpt, DeviceRequests, the Windows-only ones), and their inspect form.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use wharf_engine::{DeviceRequest, ResourceOptions, ThrottleDevice, WeightDevice};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResourcesBody {
    memory_reservation: Option<i64>,
    memory_swappiness: Option<i64>,
    kernel_memory: Option<i64>,
    // Go decodes keys case-insensitively: docker-py sends `CPURealtimePeriod`.
    #[serde(alias = "CPURealtimePeriod")]
    cpu_realtime_period: Option<i64>,
    #[serde(alias = "CPURealtimeRuntime")]
    cpu_realtime_runtime: Option<i64>,
    blkio_weight: Option<u16>,
    blkio_weight_device: Option<Vec<WeightDeviceBody>>,
    blkio_device_read_bps: Option<Vec<ThrottleDeviceBody>>,
    blkio_device_write_bps: Option<Vec<ThrottleDeviceBody>>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    blkio_device_read_iops: Option<Vec<ThrottleDeviceBody>>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    blkio_device_write_iops: Option<Vec<ThrottleDeviceBody>>,
    storage_opt: Option<BTreeMap<String, String>>,
    device_requests: Option<Vec<DeviceRequestBody>>,
    cpu_percent: Option<i64>,
    #[serde(rename = "IOMaximumBandwidth")]
    io_maximum_bandwidth: Option<u64>,
    #[serde(rename = "IOMaximumIOps")]
    io_maximum_iops: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct WeightDeviceBody {
    path: String,
    weight: u16,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ThrottleDeviceBody {
    path: String,
    rate: u64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DeviceRequestBody {
    driver: String,
    count: i64,
    #[serde(rename = "DeviceIDs")]
    device_ids: Option<Vec<String>>,
    capabilities: Option<Vec<Vec<String>>>,
}

fn throttles(list: Option<Vec<ThrottleDeviceBody>>) -> Vec<ThrottleDevice> {
    list.unwrap_or_default().into_iter().map(|d| ThrottleDevice { path: d.path, rate: d.rate }).collect()
}

impl ResourcesBody {
    pub fn into_options(self) -> ResourceOptions {
        ResourceOptions {
            memory_reservation: self.memory_reservation.unwrap_or(0),
            memory_swappiness: self.memory_swappiness,
            kernel_memory: self.kernel_memory.unwrap_or(0),
            cpu_rt_period: self.cpu_realtime_period.unwrap_or(0),
            cpu_rt_runtime: self.cpu_realtime_runtime.unwrap_or(0),
            blkio_weight: self.blkio_weight.unwrap_or(0),
            blkio_weight_device: self
                .blkio_weight_device
                .unwrap_or_default()
                .into_iter()
                .map(|d| WeightDevice { path: d.path, weight: d.weight })
                .collect(),
            blkio_device_read_bps: throttles(self.blkio_device_read_bps),
            blkio_device_write_bps: throttles(self.blkio_device_write_bps),
            blkio_device_read_iops: throttles(self.blkio_device_read_iops),
            blkio_device_write_iops: throttles(self.blkio_device_write_iops),
            storage_opt: self.storage_opt.unwrap_or_default(),
            // The CRI's alone: dockerd's API has no hugepage or unified settings.
            hugepage_limits: Vec::new(),
            unified: BTreeMap::new(),
            cpu_percent: self.cpu_percent.unwrap_or(0),
            io_maximum_bandwidth: self.io_maximum_bandwidth.unwrap_or(0),
            io_maximum_iops: self.io_maximum_iops.unwrap_or(0),
            device_requests: self
                .device_requests
                .unwrap_or_default()
                .into_iter()
                .map(|d| DeviceRequest {
                    driver: d.driver,
                    count: d.count,
                    device_ids: d.device_ids.unwrap_or_default(),
                    capabilities: d.capabilities.unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// Sets the inspect fields of these controls in `HostConfig`, named and shaped as dockerd's
/// (`StorageOpt` is `omitempty` there).
pub fn inspect_into(hc: &mut Value, r: &ResourceOptions) {
    let throttles = |list: &[ThrottleDevice]| -> Value {
        json!(list.iter().map(|d| json!({"Path": d.path, "Rate": d.rate})).collect::<Vec<_>>())
    };
    hc["MemoryReservation"] = json!(r.memory_reservation);
    hc["MemorySwappiness"] = json!(r.memory_swappiness);
    hc["KernelMemory"] = json!(r.kernel_memory);
    hc["KernelMemoryTCP"] = json!(0);
    hc["CpuRealtimePeriod"] = json!(r.cpu_rt_period);
    hc["CpuRealtimeRuntime"] = json!(r.cpu_rt_runtime);
    hc["BlkioWeight"] = json!(r.blkio_weight);
    hc["BlkioWeightDevice"] =
        json!(r.blkio_weight_device.iter().map(|d| json!({"Path": d.path, "Weight": d.weight})).collect::<Vec<_>>());
    hc["BlkioDeviceReadBps"] = throttles(&r.blkio_device_read_bps);
    hc["BlkioDeviceWriteBps"] = throttles(&r.blkio_device_write_bps);
    hc["BlkioDeviceReadIOps"] = throttles(&r.blkio_device_read_iops);
    hc["BlkioDeviceWriteIOps"] = throttles(&r.blkio_device_write_iops);
    hc["DeviceRequests"] = json!([]);
    if !r.storage_opt.is_empty() {
        hc["StorageOpt"] = json!(r.storage_opt);
    }
}
