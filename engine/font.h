/* font.h - the embedded bitmap font (X11 misc-fixed 6x13, public domain).
 *
 * Printable ASCII 32..126 plus a few symbols researchers put in labels (± × · ° ² ½ µ,
 * some Greek letters, – — … − ≈ ≤ ≥ √ ∞ ∈ arrows), in a regular and a bold face. Every
 * glyph fills a fixed 6x13 cell that includes the letter spacing; the baseline is 11
 * rows from the top of the cell. Text is UTF-8; a code point the font lacks is drawn as
 * a hollow box. */
#ifndef AG_FONT_H_INCLUDED
#define AG_FONT_H_INCLUDED

#include <stdint.h>

#define AG_FONT_W 6
#define AG_FONT_H 13
#define AG_FONT_BASELINE 11

/* The AG_FONT_H row bytes of code point cp (bit 7 = leftmost pixel of the 6). */
const uint8_t *ag_font_glyph(uint32_t cp, int bold);

/* Decodes one UTF-8 code point at *s and advances *s past it (by at least one byte);
 * invalid or truncated sequences give U+FFFD. *s must not point at the final NUL. */
uint32_t ag_utf8_next(const char **s);

/* Size in pixels of s drawn at integer scale (unrotated): width = 6 * scale * the
 * longest line (in code points), height = 13 * scale * the number of lines ('\n'). */
void ag_text_size(const char *s, int scale, int *w, int *h);

#endif
