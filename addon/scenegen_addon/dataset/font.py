"""A 5x7 bitmap font, so pictures can carry words without Pillow (Blender's Python has none).

Each glyph is 7 rows of 5 pixels above the baseline, a row written as two hex digits (bit 4
= leftmost pixel), in the style of the HD44780 character LCD; g, j, p, q, y and the comma
have an eighth row, below the baseline. Characters advance by 6 pixels (one blank column);
one not in the table is drawn as "?".
"""

import numpy as np

ASCENT = 7  # rows above the baseline (capitals and digits fill them)
HEIGHT = ASCENT + 1  # with the descender row
WIDTH = 5
ADVANCE = WIDTH + 1

# "c=HEX": character c and its 7 rows (8 with a descender); the blank " " is added below
FONT_TABLE = """
    0=0E11131519110E 1=040C040404040E 2=0E11010204081F 3=1F02040201110E 4=02060A121F0202
    5=1F101E0101110E 6=0608101E11110E 7=1F010204080808 8=0E11110E11110E 9=0E11110F01020C
    A=0E1111111F1111 B=1E11111E11111E C=0E11101010110E D=1C12111111121C E=1F10101E10101F
    F=1F10101E101010 G=0E11101711110F H=1111111F111111 I=0E04040404040E J=0702020202120C
    K=11121418141211 L=1010101010101F M=111B1515111111 N=11111915131111 O=0E11111111110E
    P=1E11111E101010 Q=0E11111115120D R=1E11111E141211 S=0F10100E01011E T=1F040404040404
    U=1111111111110E V=11111111110A04 W=1111111515150A X=11110A040A1111 Y=1111110A040404
    Z=1F01020408101F a=00000E010F110F b=1010161911111E c=00000E1010110E d=01010D1311110F
    e=00000E111F100E f=0609081C080808 g=00000F11110F010E h=10101619111111 i=04000C0404040E
    j=020006020202120C k=10101214181412 l=0C04040404040E m=00001A15151111 n=00001619111111
    o=00000E1111110E p=00001E11111E1010 q=00000F11110F0101 r=00001619101010 s=00000E100E011E
    t=08081C08080906 u=0000111111130D v=00001111110A04 w=0000111115150A x=0000110A040A11
    y=00001111110F010E z=00001F0204081F .=00000000000C0C ,=00000000000C0408 :=000C0C000C0C00
    ;=000C0C000C0408 (=02040808080402 )=08040202020408 -=0000001F000000 ~=00000815020000
    ==00001F001F0000 <=02040810080402 >=08040201020408 %=18190204081303 /=00010204081000
    '=0C040800000000 _=0000000000001F #=0A0A1F0A1F0A0A +=0004041F040400 ?=0E110102040004
    !=04040404000004 [=0E08080808080E ]=0E02020202020E
"""
FONT = {entry[0]: entry[2:] for entry in FONT_TABLE.split()} | {" ": "00" * ASCENT}


def _bits(code: str) -> np.ndarray:
    rows = [int(code[k : k + 2], 16) for k in range(0, len(code), 2)] + [0]
    return np.array([[(row >> (WIDTH - 1 - x)) & 1 for x in range(WIDTH)]
                     for row in rows[:HEIGHT]], dtype=bool)


GLYPHS = {char: _bits(code) for char, code in FONT.items()}


def glyph(char: str) -> np.ndarray:
    """The (8, 5) bool bitmap of one character ("?" for one the font lacks)."""
    return GLYPHS.get(char, GLYPHS["?"])


def text_width(text: str) -> int:
    return max(0, ADVANCE * len(text) - 1)


def bitmap(text: str) -> np.ndarray:
    """The (8, text_width) bool bitmap of a line of text."""
    out = np.zeros((HEIGHT, text_width(text)), dtype=bool)
    for k, char in enumerate(text):
        out[:, k * ADVANCE : k * ADVANCE + WIDTH] = glyph(char)
    return out


def draw(canvas: np.ndarray, text: str, x: int, y: int, colour) -> None:
    """Paint the text's pixels in `colour` on an (H, W, 3) canvas, top-left corner at (x, y);
    the background stays as it is and whatever falls outside the canvas is clipped."""
    mask = bitmap(text)
    height, width = canvas.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + mask.shape[1], width), min(y + HEIGHT, height)
    if x0 < x1 and y0 < y1:
        canvas[y0:y1, x0:x1][mask[y0 - y : y1 - y, x0 - x : x1 - x]] = colour
