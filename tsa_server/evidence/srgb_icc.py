"""The sRGB ICC profile of the certificates' PDF/A OutputIntent (ISO 19005-3 6.2.3).

No Debian package this server installs ships an ICC profile, so its 588 bytes are kept
here: the sRGB IEC 61966-2.1 profile as LittleCMS 2.19 builds it
(`cmsCreate_sRGBProfile`, through Pillow:
`ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()`),
generated once and frozen so that certificates stay deterministic (its header's version
field set to 4.2, ICC.1:2004-10, the version PDF/A-3 cites; it uses no later tag).
The profile is data describing a public standard; LittleCMS is MIT-licensed
(Copyright (c) 1998-2023 Marti Maria Saguer), which allows this copy.
"""

from __future__ import annotations

import base64

SRGB_ICC = base64.b64decode(
    "AAACTGxjbXMEIAAAbW50clJHQiBYWVogB+oADAAHAAsAMQAQYWNzcEFQUEwAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAPbWAAEAAAAA0y1sY21zAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAL"
    "ZGVzYwAAAQgAAAA2Y3BydAAAAUAAAABMd3RwdAAAAYwAAAAUY2hhZAAAAaAAAAAsclhZWgAAAcwAAAAUYlhZWgAA"
    "AeAAAAAUZ1hZWgAAAfQAAAAUclRSQwAAAggAAAAgZ1RSQwAAAggAAAAgYlRSQwAAAggAAAAgY2hybQAAAigAAAAk"
    "bWx1YwAAAAAAAAABAAAADGVuVVMAAAAaAAAAHABzAFIARwBCACAAYgB1AGkAbAB0AC0AaQBuAABtbHVjAAAAAAAA"
    "AAEAAAAMZW5VUwAAADAAAAAcAE4AbwAgAGMAbwBwAHkAcgBpAGcAaAB0ACwAIAB1AHMAZQAgAGYAcgBlAGUAbAB5"
    "WFlaIAAAAAAAAPbWAAEAAAAA0y1zZjMyAAAAAAABDEIAAAXe///zJQAAB5MAAP2Q///7of///aIAAAPcAADAblhZ"
    "WiAAAAAAAABvoAAAOPUAAAOQWFlaIAAAAAAAACSfAAAPhAAAtsNYWVogAAAAAAAAYpcAALeHAAAY2XBhcmEAAAAA"
    "AAMAAAACZmYAAPKnAAANWQAAE9AAAApbY2hybQAAAAAAAwAAAACj1wAAVHsAAEzNAACZmgAAJmYAAA9c"
)
"""The profile (ICC v4, RGB, 3 components)."""
