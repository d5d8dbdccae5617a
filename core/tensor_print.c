/* tg_tensor_print: numpy's repr of an array, followed by dtype and shape.
 *
 *     W = array([[ 1.62434536, -0.61175641, -0.52817175],
 *                [-1.07296862,  0.86540763, -2.3015387 ]])  # f64 (2,3)
 *
 * Printing exactly what numpy prints (its defaults: precision 8, floatmode
 * 'maxprec', linewidth 75, threshold 1000, edgeitems 3) lets a learner put a
 * tensor beside the notebook's output and compare it character by character.
 * numpy's rules, as implemented here:
 *   - all shown elements share one width. Notation is positional unless the
 *     non-zero finite magnitudes need scientific (max >= 1e8, min < 1e-4 or
 *     max/min > 1000);
 *   - positional: the shortest digits that read back as the same value
 *     (shortest for f32 values when the tensor is f32), cut to 8 places after
 *     the point, trailing zeros dropped but the point kept ("1."); integer
 *     parts are right-aligned, fractions left-aligned and padded with spaces;
 *   - scientific: mantissas padded with zeros to the longest one, exponents to
 *     the longest one (at least 2 digits);
 *   - more than 1000 elements: along every axis longer than 6 only the first
 *     and last 3 entries are shown, with "..." between; the format is chosen
 *     from the shown elements only;
 *   - rows wrap before column 75; sub-arrays are separated by one newline per
 *     remaining axis.
 * The text before "array(" (the name) shifts the continuation lines, as
 * numpy's array2string prefix does. Empty tensors print "array([])". */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

enum { PRECISION = 8, LINE_WIDTH = 75, THRESHOLD = 1000, EDGE_ITEMS = 3 };

/* Decimal form of a finite magnitude: digits d0 d1 d2 ... meaning
 * d0.d1d2... x 10^exp10, without trailing zeros (zero is "0", exponent 0). */
typedef struct {
    char digits[32];
    int n, exp10;
} decimal;

/* One formatted element, split the way widths are measured. */
typedef struct {
    char sign[2];    /* "-" or "" */
    char whole[64];  /* integer part (scientific: the one leading digit) */
    char frac[64];   /* digits after the point */
    int exp10;       /* scientific only */
} formatted;

typedef struct {
    FILE *f;
    const tg_tensor *t;
    bool summarise;   /* more than THRESHOLD elements */
    bool scientific;
    int pad_left;     /* characters before the point (sign included) */
    int pad_right;    /* positional: characters after the point */
    int precision;    /* scientific: mantissa digits after the point */
    int exp_digits;   /* scientific: exponent digits */
    bool measured;    /* the four widths above are final */
    int width;        /* of every element */
    int col;          /* current output column */
    /* statistics of the shown elements */
    bool any_finite, any_nonfinite, neg_inf;
    double min_abs, max_abs; /* over non-zero finite values */
} printer;

static void scan_axis(printer *p, int axis, int64_t *index,
                      void (*visit)(printer *, double));
static void print_axis(printer *p, int axis, int64_t *index, int indent, int width);
static void gather_magnitudes(printer *p, double v);
static void measure(printer *p, double v);
static void format_value(const printer *p, double v, formatted *out);
static void put_element(printer *p, double v);

void tg_tensor_print(FILE *f, const char *name, const tg_tensor *t)
{
    if (!f)
        f = stdout;
    if (!name && t)
        name = t->name;
    int prefix_len = 0;
    if (name)
        prefix_len = fprintf(f, "%s = ", name);
    if (!t) {
        fputs("NULL\n", f);
        return;
    }
    if (t->ndim < 0 || t->ndim > TG_MAX_DIMS || tg_dtype_size(t->dtype) == 0 || !t->data) {
        fputs("<not a valid tensor>\n", f);
        return;
    }
    printer p = {.f = f, .t = t, .min_abs = INFINITY, .max_abs = 0};
    int64_t numel = tg_tensor_numel(t);
    int64_t index[TG_MAX_DIMS] = {0};
    fputs("array(", f);
    p.col = (prefix_len > 0 ? prefix_len : 0) + 6;
    if (numel == 0) {
        fputs("[]", f);
    } else {
        p.summarise = numel > THRESHOLD;
        scan_axis(&p, 0, index, gather_magnitudes);
        if (p.any_finite && p.max_abs > 0) {
            bool single = t->dtype == TG_F32;
            double ratio = single ? (double)((float)p.max_abs / (float)p.min_abs)
                                  : p.max_abs / p.min_abs;
            p.scientific = p.max_abs >= 1e8 || ratio > 1000.0 ||
                           (single ? (float)p.min_abs < 1e-4f : p.min_abs < 1e-4);
        }
        scan_axis(&p, 0, index, measure);
        p.measured = true;
        if (p.scientific) {
            if (p.exp_digits < 2)
                p.exp_digits = 2;
            p.pad_right = p.exp_digits + 2 + p.precision;
        }
        if (p.any_nonfinite) { /* "nan", "inf", "-inf" right-aligned */
            int room = p.pad_right + 1;
            int need = (p.neg_inf ? 4 : 3) - room;
            if (p.pad_left < need)
                p.pad_left = need;
        }
        p.width = p.pad_left + 1 + p.pad_right;
        /* numpy leaves room for the closing ")" on every line. */
        print_axis(&p, 0, index, p.col + 1, LINE_WIDTH - 1);
    }
    char shape[96];
    fprintf(f, ")  # %s %s\n", tg_dtype_name(t->dtype), tg_shape_str(t, shape, sizeof shape));
}

/* ---- which elements are shown ------------------------------------------------ */

static bool axis_summarised(const printer *p, int axis)
{
    return p->summarise && p->t->shape[axis] > 2 * EDGE_ITEMS;
}

/* The k-th shown position along an axis of n, or -1 for the "..." slot. */
static int64_t shown_position(bool summarised, int64_t n, int64_t k)
{
    if (!summarised)
        return k;
    if (k < EDGE_ITEMS)
        return k;
    if (k == EDGE_ITEMS)
        return -1;
    return n - (2 * EDGE_ITEMS + 1 - k);
}

static int64_t shown_count(bool summarised, int64_t n)
{
    return summarised ? 2 * EDGE_ITEMS + 1 : n;
}

static double element(const printer *p, const int64_t *index)
{
    double v = tg_tensor_get(p->t, index);
    return p->t->dtype == TG_F32 ? (double)(float)v : v;
}

static void scan_axis(printer *p, int axis, int64_t *index, void (*visit)(printer *, double))
{
    if (axis == p->t->ndim) {
        visit(p, element(p, index));
        return;
    }
    bool summarised = axis_summarised(p, axis);
    int64_t n = p->t->shape[axis], count = shown_count(summarised, n);
    for (int64_t k = 0; k < count; k++) {
        int64_t i = shown_position(summarised, n, k);
        if (i < 0)
            continue;
        index[axis] = i;
        scan_axis(p, axis + 1, index, visit);
    }
    index[axis] = 0;
}

/* ---- choosing the format -------------------------------------------------------- */

static void gather_magnitudes(printer *p, double v)
{
    if (!isfinite(v)) {
        p->any_nonfinite = true;
        if (isinf(v) && v < 0)
            p->neg_inf = true;
        return;
    }
    p->any_finite = true;
    double a = fabs(v);
    if (a == 0)
        return;
    if (a > p->max_abs)
        p->max_abs = a;
    if (a < p->min_abs)
        p->min_abs = a;
}

static void measure(printer *p, double v)
{
    if (!isfinite(v))
        return;
    formatted s;
    format_value(p, v, &s);
    int left = (int)(strlen(s.sign) + strlen(s.whole)), right = (int)strlen(s.frac);
    if (left > p->pad_left)
        p->pad_left = left;
    if (p->scientific) {
        if (right > p->precision)
            p->precision = right;
        char e[16];
        int digits = snprintf(e, sizeof e, "%d", abs(s.exp10));
        if (digits > p->exp_digits)
            p->exp_digits = digits;
    } else if (right > p->pad_right) {
        p->pad_right = right;
    }
}

/* ---- digits ----------------------------------------------------------------------- */

/* Parse "d.ddde+XX" (printf's %e) into a decimal without trailing zeros. */
static void parse_scientific(const char *s, decimal *d)
{
    d->n = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && d->n < (int)sizeof d->digits - 1)
            d->digits[d->n++] = *s;
    d->exp10 = *s == 'e' ? atoi(s + 1) : 0;
    while (d->n > 1 && d->digits[d->n - 1] == '0')
        d->n--;
    d->digits[d->n] = '\0';
}

/* The fewest significant digits that read back as `a` (a >= 0, finite), in
 * the precision of the tensor: f32 values are rounded through float. When
 * several strings of that length read back, printf's correctly rounded one is
 * the nearest, as numpy's Dragon4 picks. */
static void shortest(double a, bool single, decimal *d)
{
    char buf[48];
    if (a == 0) {
        strcpy(d->digits, "0");
        d->n = 1;
        d->exp10 = 0;
        return;
    }
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec, a);
        if (single ? strtof(buf, NULL) == (float)a : strtod(buf, NULL) == a)
            break;
    }
    parse_scientific(buf, d);
}

static void format_value(const printer *p, double v, formatted *out)
{
    bool single = p->t->dtype == TG_F32;
    double a = fabs(v);
    decimal d;
    shortest(a, single, &d);
    strcpy(out->sign, signbit(v) ? "-" : "");
    out->exp10 = 0;
    if (p->scientific) {
        /* Measuring: the shortest digits, at most 8 after the point. Printing:
         * every mantissa gets the longest length, and numpy fills it with
         * the value's exact digits (not zeros), which shows for f32. */
        int places = p->measured ? p->precision : PRECISION;
        if (p->measured || d.n - 1 > PRECISION) {
            char buf[48];
            snprintf(buf, sizeof buf, "%.*e", places, a);
            parse_scientific(buf, &d);
        }
        out->whole[0] = d.digits[0];
        out->whole[1] = '\0';
        strcpy(out->frac, d.digits + 1);
        out->exp10 = d.exp10;
        return;
    }
    if (d.n - 1 - d.exp10 > PRECISION) { /* round at the 8th place, keep no trailing 0 */
        char buf[64];
        snprintf(buf, sizeof buf, "%.*f", PRECISION, a);
        char *point = strchr(buf, '.');
        *point = '\0';
        snprintf(out->whole, sizeof out->whole, "%s", buf);
        snprintf(out->frac, sizeof out->frac, "%s", point + 1);
        size_t len = strlen(out->frac);
        while (len > 0 && out->frac[len - 1] == '0')
            out->frac[--len] = '\0';
        return;
    }
    if (d.n - 1 - d.exp10 <= 0) {
        /* A whole number: numpy prints all its digits exactly, even where
         * fewer would read back (f32 above 2^24: 35711008, not 35711010). */
        snprintf(out->whole, sizeof out->whole, "%.0f", a);
        out->frac[0] = '\0';
        return;
    }
    /* Place the point in the shortest digits. Positional values are below
     * 1e8 here, so at most 8 integer digits and 8 + 8 fraction digits. */
    int w = 0, fr = 0;
    if (d.exp10 >= 0) {
        for (int i = 0; i <= d.exp10; i++) /* d.n > exp10 + 1 here */
            out->whole[w++] = d.digits[i];
        for (int i = d.exp10 + 1; i < d.n; i++)
            out->frac[fr++] = d.digits[i];
    } else {
        out->whole[w++] = '0';
        for (int i = 0; i < -d.exp10 - 1; i++)
            out->frac[fr++] = '0';
        for (int i = 0; i < d.n; i++)
            out->frac[fr++] = d.digits[i];
    }
    out->whole[w] = '\0';
    out->frac[fr] = '\0';
}

/* ---- writing ------------------------------------------------------------------------ */

static void put_spaces(printer *p, int n)
{
    for (int i = 0; i < n; i++)
        fputc(' ', p->f);
    p->col += n > 0 ? n : 0;
}

static void put_text(printer *p, const char *s)
{
    fputs(s, p->f);
    p->col += (int)strlen(s);
}

static void put_element(printer *p, double v)
{
    if (!isfinite(v)) {
        const char *s = isnan(v) ? "nan" : v < 0 ? "-inf" : "inf";
        put_spaces(p, p->width - (int)strlen(s));
        put_text(p, s);
        return;
    }
    formatted s;
    format_value(p, v, &s);
    put_spaces(p, p->pad_left - (int)(strlen(s.sign) + strlen(s.whole)));
    put_text(p, s.sign);
    put_text(p, s.whole);
    put_text(p, ".");
    put_text(p, s.frac);
    int frac_len = (int)strlen(s.frac);
    if (!p->scientific) {
        put_spaces(p, p->pad_right - frac_len);
        return;
    }
    for (int i = frac_len; i < p->precision; i++)
        put_text(p, "0");
    char e[24];
    snprintf(e, sizeof e, "e%c%0*d", s.exp10 < 0 ? '-' : '+', p->exp_digits, abs(s.exp10));
    put_text(p, e);
}

/* numpy's _formatArray. On entry the output stands right where this
 * sub-array's "[" goes; `indent` is the column of its first element, and
 * lines (with the separator or bracket that ends them) stay within `width`. */
static void print_axis(printer *p, int axis, int64_t *index, int indent, int width)
{
    const tg_tensor *t = p->t;
    if (axis == t->ndim) { /* 0-d tensor */
        put_element(p, element(p, index));
        return;
    }
    bool summarised = axis_summarised(p, axis);
    int64_t n = t->shape[axis], count = shown_count(summarised, n);
    int axes_left = t->ndim - axis;
    put_text(p, "[");
    for (int64_t k = 0; k < count; k++) {
        int64_t i = shown_position(summarised, n, k);
        if (axes_left == 1) {
            /* Wrap before a word that would reach past width - 1 (room
             * for "," or "]"), unless the line holds nothing yet. */
            if (k > 0) {
                int word = i < 0 ? 3 : p->width;
                int line = p->col + 2;
                if (line + word > width - 1 && line > indent) {
                    put_text(p, ",\n");
                    p->col = 0;
                    put_spaces(p, indent);
                } else {
                    put_text(p, ", ");
                }
            }
            if (i < 0) {
                put_text(p, "...");
            } else {
                index[axis] = i;
                put_element(p, element(p, index));
            }
            continue;
        }
        if (k > 0) {
            put_text(p, ",");
            for (int b = 0; b < axes_left - 1; b++)
                fputc('\n', p->f);
            p->col = 0;
            put_spaces(p, indent);
        }
        if (i < 0) {
            put_text(p, "...");
        } else {
            index[axis] = i;
            print_axis(p, axis + 1, index, indent + 1, width - 1);
        }
    }
    index[axis] = 0;
    put_text(p, "]");
}
