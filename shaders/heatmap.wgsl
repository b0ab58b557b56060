// One heatmap (src/app/heatmap_gpu.rs): the grid is an R32Float texture (row 0 at the top),
// drawn over the paint callback's viewport; the fragment shader maps value → colour with the
// control points of src/analysis/colormap.rs (NaN is grey).

struct Params {
    // Value drawn at the low end of the colour map.
    lo: f32,
    // Value drawn at the high end.
    hi: f32,
    // 1.0 when the render target is sRGB (colours are then written linear).
    srgb_target: f32,
    _pad: f32,
};

@group(0) @binding(0) var grid: texture_2d<f32>;
@group(0) @binding(1) var<uniform> params: Params;

// Control colours at t = 0, 0.25, 0.5, 0.75, 1 (the same as colormap::STOPS).
const STOPS = array<vec3<f32>, 5>(
    vec3<f32>(0.267, 0.005, 0.329),
    vec3<f32>(0.230, 0.322, 0.546),
    vec3<f32>(0.128, 0.567, 0.551),
    vec3<f32>(0.369, 0.789, 0.383),
    vec3<f32>(0.993, 0.906, 0.144),
);
const NAN_GREY = vec3<f32>(0.502, 0.502, 0.502);

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// A triangle that covers the viewport: uv (0, 0) top left, (1, 1) bottom right.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    let uv = vec2<f32>(f32((index << 1u) & 2u), f32(index & 2u));
    var out: VertexOut;
    out.position = vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0);
    out.uv = uv;
    return out;
}

// NaN by its bits: comparisons with NaN may be optimised away.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn to_linear(c: vec3<f32>) -> vec3<f32> {
    let low = c / 12.92;
    let high = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, low, c <= vec3<f32>(0.04045));
}

fn colormap(t: f32) -> vec3<f32> {
    var stops = STOPS;
    let x = clamp(t, 0.0, 1.0) * 4.0;
    let k = min(u32(floor(x)), 3u);
    let f = x - f32(k);
    return mix(stops[k], stops[k + 1u], f);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let size = textureDimensions(grid);
    let cell = min(vec2<u32>(in.uv * vec2<f32>(size)), size - vec2<u32>(1u));
    let v = textureLoad(grid, cell, 0).r;
    var c = NAN_GREY;
    if !is_nan(v) {
        c = colormap((v - params.lo) / max(params.hi - params.lo, 1e-6));
    }
    if params.srgb_target > 0.5 {
        c = to_linear(c);
    }
    return vec4<f32>(c, 1.0);
}
