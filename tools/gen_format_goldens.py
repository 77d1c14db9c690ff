#!/usr/bin/python3
"""Writes test/Vega.MLNet.Tests/TestData/formats: images in the formats beyond JPEG/PNG (GIF, WebP, BMP), made from
../shared/images with Pillow, and for each the Pillow 9.4 decode `Image.open(f).convert("RGB")` as raw HWC bytes —
the same oracle as ../shared/images/golden. Run with Debian 12's python3 and python3-pil (Pillow 9.4.0):
    /usr/bin/python3 tools/gen_format_goldens.py
"""
import json, os, sys
import PIL
from PIL import Image

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
shared = os.path.join(os.path.dirname(root), "shared", "images")
out = os.path.join(root, "test", "Vega.MLNet.Tests", "TestData", "formats")
os.makedirs(out, exist_ok=True)

dots = Image.open(os.path.join(shared, "dots.png")).convert("RGB").crop((100, 60, 240, 160))  # 140x100 RGB
logo = Image.open(os.path.join(shared, "Minduka_Present_Blue_Pack.png"))     # 128x128 RGBA
photo = Image.open(os.path.join(shared, "grace_hopper.jpg")).convert("RGB").resize((128, 150), Image.BICUBIC)

made = []
def save(name, image, **kw):
    path = os.path.join(out, name)
    image.save(path, **kw)
    back = Image.open(path)
    rgb = back.convert("RGB")
    with open(path + ".rgb.u8", "wb") as f:
        f.write(rgb.tobytes())
    made.append({"file": name, "format": back.format, "mode": back.mode, "width": rgb.width, "height": rgb.height,
                 "golden": name + ".rgb.u8"})

save("dots_palette.gif", dots.convert("P", palette=Image.ADAPTIVE, colors=64))
save("photo_palette.gif", photo.convert("P", palette=Image.ADAPTIVE, colors=256))
save("photo_lossless.webp", photo, lossless=True)
save("logo_rgba_lossless.webp", logo, lossless=True)
save("photo_lossy.webp", photo, quality=80)
save("dots_rgb24.bmp", dots)
save("photo_palette8.bmp", photo.convert("P", palette=Image.ADAPTIVE, colors=256))
save("dots_gray.bmp", dots.convert("L"))

with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"pillow": PIL.__version__, "made_from": "../shared/images (dots.png, Minduka_Present_Blue_Pack.png, grace_hopper.jpg)",
               "images": made}, f, indent=1)
print(f"wrote {len(made)} images with Pillow {PIL.__version__} into {out}")
