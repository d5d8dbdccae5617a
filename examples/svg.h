/* A line chart written as an SVG file, with no plotting library: the examples
 * use it for loss curves and gradient norms. Header-only (static functions)
 * so that each example stays a single program. */
#ifndef TG_EXAMPLES_SVG_H
#define TG_EXAMPLES_SVG_H

#include <math.h>
#include <stdio.h>

typedef struct {
    const char *label; /* legend text */
    const char *color; /* any SVG color, e.g. "#1f77b4" */
    const double *x, *y;
    int n;
    int dots; /* 1: draw points, 0: draw a line */
} svg_series;

typedef struct {
    const char *title, *x_label, *y_label;
    int log_y; /* 1: logarithmic y axis (values must be > 0) */
} svg_chart;

enum { SVG_W = 720, SVG_H = 420, SVG_LEFT = 70, SVG_RIGHT = 20, SVG_TOP = 40, SVG_BOTTOM = 50 };

/* Round a span to a tick step of 1, 2 or 5 times a power of ten. */
static double svg_tick_step(double span, int ticks)
{
    double raw = span / ticks, p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* Write the chart; returns 0 on success, -1 if the file cannot be written. */
static int svg_write(const char *path, const svg_chart *chart, const svg_series *series, int n)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int s = 0; s < n; s++)
        for (int i = 0; i < series[s].n; i++) {
            double y = chart->log_y ? log10(series[s].y[i]) : series[s].y[i];
            if (!isfinite(y) || !isfinite(series[s].x[i]))
                continue;
            x0 = fmin(x0, series[s].x[i]);
            x1 = fmax(x1, series[s].x[i]);
            y0 = fmin(y0, y);
            y1 = fmax(y1, y);
        }
    if (!(x0 <= x1)) { /* no finite point: an empty frame */
        x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    }
    if (x1 == x0)
        x1 = x0 + 1;
    if (y1 == y0)
        y1 = y0 + 1;
    double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;

    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    double pw = SVG_W - SVG_LEFT - SVG_RIGHT, ph = SVG_H - SVG_TOP - SVG_BOTTOM;
#define SX(v) (SVG_LEFT + ((v)-x0) / (x1 - x0) * pw)
#define SY(v) (SVG_TOP + (1 - ((v)-y0) / (y1 - y0)) * ph)
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"24\" font-size=\"15\">%s</text>\n",
            SVG_W, SVG_H, SVG_LEFT, chart->title);
    double xs = svg_tick_step(x1 - x0, 8), ys = svg_tick_step(y1 - y0, 6);
    for (double v = ceil(x0 / xs) * xs; v <= x1 + 1e-9 * xs; v += xs)
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                SX(v), SVG_TOP, SX(v), SVG_TOP + ph, SX(v), SVG_TOP + ph + 16, v);
    for (double v = ceil(y0 / ys) * ys; v <= y1 + 1e-9 * ys; v += ys)
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n",
                SVG_LEFT, SY(v), SVG_LEFT + pw, SY(v), SVG_LEFT - 6, SY(v) + 4,
                chart->log_y ? pow(10, v) : v);
    fprintf(f,
            "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
            "stroke=\"black\"/>\n"
            "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n"
            "<text transform=\"translate(16,%.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
            SVG_LEFT, SVG_TOP, pw, ph, SVG_LEFT + pw / 2, SVG_H - 10, chart->x_label,
            SVG_TOP + ph / 2, chart->y_label);
    for (int s = 0; s < n; s++) {
        const svg_series *S = &series[s];
        if (!S->dots)
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                    S->color);
        for (int i = 0; i < S->n; i++) {
            double y = chart->log_y ? log10(S->y[i]) : S->y[i];
            if (!isfinite(y))
                continue;
            if (S->dots)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                        SX(S->x[i]), SY(y), S->color);
            else
                fprintf(f, "%.1f,%.1f ", SX(S->x[i]), SY(y));
        }
        if (!S->dots)
            fprintf(f, "\"/>\n");
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                "<text x=\"%.1f\" y=\"%d\">%s</text>\n",
                SVG_LEFT + pw - 190, SVG_TOP + 10 + 18 * s, S->color, SVG_LEFT + pw - 172,
                SVG_TOP + 21 + 18 * s, S->label);
    }
#undef SX
#undef SY
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}

#endif
