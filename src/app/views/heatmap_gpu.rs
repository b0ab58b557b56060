//! Heatmaps drawn on the GPU: each map's grid is uploaded once per snapshot as an R32Float
//! texture and coloured by `shaders/heatmap.wgsl` inside egui's render pass (an
//! `egui_wgpu::Callback`). The pipeline and textures live in egui-wgpu's callback resources.

use crate::analysis::heatmap::Head;
use crate::app::data::HeatmapSnapshot;
use eframe::egui_wgpu::{CallbackResources, CallbackTrait, RenderState, ScreenDescriptor};
use eframe::wgpu;
use std::sync::Arc;

/// The WGSL source of the heatmap shader.
pub const SHADER: &str = include_str!("../../../shaders/heatmap.wgsl");

/// The pipeline and the textures of the four maps, kept between frames.
struct HeatmapGpu {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    srgb_target: bool,
    maps: [Option<MapTexture>; 4],
}

/// One map on the GPU and the snapshot it came from.
struct MapTexture {
    version: u64,
    size: [usize; 2],
    bind_group: wgpu::BindGroup,
    params: wgpu::Buffer,
}

/// Creates the heatmap pipeline in `render`'s renderer, once.
pub fn install(render: &RenderState) {
    let mut renderer = render.renderer.write();
    if renderer.callback_resources.contains::<HeatmapGpu>() {
        return;
    }
    let device = &render.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("heatmap"),
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("heatmap"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Texture {
                    multisampled: false,
                    sample_type: wgpu::TextureSampleType::Float { filterable: false },
                    view_dimension: wgpu::TextureViewDimension::D2,
                },
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 1,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("heatmap"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    // eframe's render pass: one sample, no depth buffer (its defaults, which the app keeps).
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("heatmap"),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("vs_main"),
            buffers: &[],
            compilation_options: wgpu::PipelineCompilationOptions::default(),
        },
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some("fs_main"),
            targets: &[Some(wgpu::ColorTargetState {
                format: render.target_format,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
            compilation_options: wgpu::PipelineCompilationOptions::default(),
        }),
        multiview_mask: None,
        cache: None,
    });
    renderer.callback_resources.insert(HeatmapGpu {
        pipeline,
        layout,
        srgb_target: render.target_format.is_srgb(),
        maps: Default::default(),
    });
}

impl HeatmapGpu {
    /// Uploads `head`'s map unless this snapshot's is already there; sets its colour range.
    fn prepare(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        paint: &HeatmapPaint,
    ) -> Option<()> {
        let maps = &paint.snapshot.maps;
        let size = [maps.nx, maps.ny];
        let slot = &mut self.maps[paint.head as usize];
        let stale = slot
            .as_ref()
            .is_none_or(|m| m.version != paint.snapshot.version || m.size != size);
        if stale {
            *slot = Some(upload(device, queue, &self.layout, paint)?);
        }
        let map = slot.as_ref()?;
        let srgb = if self.srgb_target { 1.0f32 } else { 0.0 };
        let params: Vec<u8> = [paint.range[0], paint.range[1], srgb, 0.0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        queue.write_buffer(&map.params, 0, &params);
        Some(())
    }
}

fn upload(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    layout: &wgpu::BindGroupLayout,
    paint: &HeatmapPaint,
) -> Option<MapTexture> {
    let maps = &paint.snapshot.maps;
    let values = maps.get(paint.head);
    if maps.nx == 0 || maps.ny == 0 || values.len() != maps.nx * maps.ny {
        return None;
    }
    let extent = wgpu::Extent3d {
        width: maps.nx as u32,
        height: maps.ny as u32,
        depth_or_array_layers: 1,
    };
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some(paint.head.name()),
        size: extent,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::R32Float,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: &texture,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        &bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(4 * maps.nx as u32),
            rows_per_image: Some(maps.ny as u32),
        },
        extent,
    );
    let params = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("heatmap params"),
        size: 16,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(paint.head.name()),
        layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::TextureView(&view),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: params.as_entire_binding(),
            },
        ],
    });
    Some(MapTexture {
        version: paint.snapshot.version,
        size: [maps.nx, maps.ny],
        bind_group,
        params,
    })
}

/// Paints one map of a snapshot over the callback's rectangle, `range` mapping to the colour
/// map's ends.
pub struct HeatmapPaint {
    pub snapshot: Arc<HeatmapSnapshot>,
    pub head: Head,
    pub range: [f32; 2],
}

impl CallbackTrait for HeatmapPaint {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(gpu) = resources.get_mut::<HeatmapGpu>() {
            gpu.prepare(device, queue, self);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(gpu) = resources.get::<HeatmapGpu>() else {
            return;
        };
        let Some(map) = &gpu.maps[self.head as usize] else {
            return;
        };
        pass.set_pipeline(&gpu.pipeline);
        pass.set_bind_group(0, &map.bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::colormap::STOPS;

    #[test]
    fn the_shader_parses_and_validates() {
        let module = naga::front::wgsl::parse_str(SHADER).expect("heatmap.wgsl parses");
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .expect("heatmap.wgsl validates");
        let entries: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(entries, ["vs_main", "fs_main"]);
    }

    /// The numbers of every `vec3<f32>(r, g, b)` in the shader's `STOPS` array.
    fn shader_stops(source: &str) -> Vec<[f32; 3]> {
        let start = source.find("const STOPS").expect("STOPS in the shader");
        let body = &source[start..];
        let body = &body[..body.find(");").expect("end of STOPS")];
        body.split("vec3<f32>(")
            .skip(1) // the text before the first stop
            .map(|s| {
                let inner = &s[..s.find(')').expect("closing parenthesis")];
                let v: Vec<f32> = inner
                    .split(',')
                    .map(|x| x.trim().parse().expect("a number"))
                    .collect();
                [v[0], v[1], v[2]]
            })
            .collect()
    }

    #[test]
    fn the_shader_uses_the_colour_maps_control_points() {
        assert_eq!(shader_stops(SHADER), STOPS);
    }
}
