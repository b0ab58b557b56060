//! Textures of a few observation frames, uploaded again only when what they show changes.

use super::views::episode::to_color_image;
use crate::env::Frame;
use egui::{Color32, Rect, Sense, Stroke, StrokeKind, TextureHandle, TextureOptions, Ui, pos2};

/// The textures of one row of frames, tagged with the key of what they show.
pub struct FrameTextures<K> {
    name: &'static str,
    key: Option<K>,
    textures: Vec<TextureHandle>,
}

impl<K: PartialEq> FrameTextures<K> {
    /// An empty set; `name` labels the textures (debugging only).
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            key: None,
            textures: Vec::new(),
        }
    }

    /// The textures of `frames`, which `key` identifies: uploaded when the key changes.
    pub fn get<'f>(
        &mut self,
        ctx: &egui::Context,
        key: K,
        frames: impl IntoIterator<Item = &'f Frame>,
    ) -> &[TextureHandle] {
        if self.key.as_ref() != Some(&key) {
            self.textures = frames
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    let name = format!("{}/{i}", self.name);
                    ctx.load_texture(name, to_color_image(f), TextureOptions::NEAREST)
                })
                .collect();
            self.key = Some(key);
        }
        &self.textures
    }
}

/// Draws a frame texture as a `side`-point square (a dark placeholder when there is none).
pub fn frame_square(ui: &mut Ui, texture: Option<&TextureHandle>, side: f32) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(egui::Vec2::splat(side), Sense::hover());
    let painter = ui.painter();
    match texture {
        Some(t) => {
            let uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
            painter.image(t.id(), rect, uv, Color32::WHITE);
        }
        None => {
            painter.rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);
        }
    }
    painter.rect_stroke(
        rect,
        0.0,
        Stroke::new(1.0, Color32::from_gray(110)),
        StrokeKind::Outside,
    );
    response
}
