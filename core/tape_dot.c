/* tg_tape_dot: a tape as a Graphviz picture.
 *
 * Ops are boxes labelled with their names, tensors are ellipses labelled
 * with their shapes, and edges run input -> op -> output in execution order,
 * so the picture is the computation graph that backward walks in reverse.
 *
 * A tensor is one node however many ops read it: the entries keep the very
 * pointer an op returned (or the persistent tensor the user passed), so
 * pointer identity links a producer to its consumers. Three kinds of input
 * are not the output of an entry:
 *   - persistent tensors (parameters, data): filled ellipses, with their
 *     name when they have one; blue when they require a gradient;
 *   - views an op made for itself (a broadcast bias, a transposed operand)
 *     or a view the caller made on the stack: dashed ellipses joined by a
 *     dashed edge to the tensor they look into, found through grad_root, or
 *     else through the storage they share;
 *   - tape tensors made outside any op (tg_tape_zeros): plain ellipses.
 * Views taken with the tape functions (tg_select, tg_slice, ...) are entries
 * of their own and appear as dashed boxes. The outputs of the last entry
 * (usually the loss) are drawn bold. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tape.h"

typedef struct {
    const void *key;
    int node;
} slot;

/* Open addressing on pointers: the tapes drawn are small enough for a
 * fixed table sized from an upper bound of the number of nodes. */
typedef struct {
    slot *slots;
    size_t mask;
} pointer_map;

typedef struct {
    FILE *f;
    pointer_map by_tensor;       /* tensor struct -> node */
    pointer_map by_storage;      /* data pointer -> first node seen with it */
    const tg_tensor **tensor_of; /* node -> the tensor it was made for */
    int n_nodes;
} drawing;

static int map_find(const pointer_map *m, const void *key);
static void map_put(pointer_map *m, const void *key, int node);
static int tensor_node(drawing *d, const tg_tensor *t);
static int new_tensor_node(drawing *d, const tg_tensor *t, const char *style);
static void write_label(FILE *f, const char *name, const tg_tensor *t);

tg_status tg_tape_dot(const tg_tape *tape, FILE *f)
{
    if (!tape || !f)
        return tg_fail(TG_ERR_ARG, "tg_tape_dot: %s is NULL", !tape ? "tape" : "f");
    /* The entries are linked last to first; draw them in execution order. */
    size_t n_entries = 0, bound = 1;
    for (const tg_entry *e = tg_tape_last_entry(tape); e; e = e->prev) {
        n_entries++;
        /* an input can add itself and the tensor it views; an output, itself */
        size_t add = 2 * (size_t)e->n_in + (size_t)e->n_out;
        if (tg_add_overflows(bound, add, &bound))
            return tg_fail(TG_ERR_OVERFLOW, "tg_tape_dot: the tape is too large to draw");
    }
    if (bound > INT32_MAX / 2)
        return tg_fail(TG_ERR_OVERFLOW, "tg_tape_dot: the tape is too large to draw");
    size_t capacity = 16; /* a power of two, at most half full */
    while (capacity < 2 * bound)
        capacity *= 2;
    const tg_entry **entries = malloc(sizeof *entries * (n_entries ? n_entries : 1));
    drawing d = {.f = f};
    d.by_tensor.slots = calloc(capacity, sizeof(slot));
    d.by_storage.slots = calloc(capacity, sizeof(slot));
    d.tensor_of = malloc(sizeof *d.tensor_of * bound);
    if (!entries || !d.by_tensor.slots || !d.by_storage.slots || !d.tensor_of) {
        free(entries);
        free(d.by_tensor.slots);
        free(d.by_storage.slots);
        free(d.tensor_of);
        return tg_fail(TG_ERR_NOMEM, "tg_tape_dot: out of memory for %zu entries", n_entries);
    }
    d.by_tensor.mask = d.by_storage.mask = capacity - 1;
    size_t k = n_entries;
    for (const tg_entry *e = tg_tape_last_entry(tape); e; e = e->prev)
        entries[--k] = e;

    fprintf(f, "digraph tape {\n"
               "  node [fontname=\"Helvetica\", fontsize=11];\n"
               "  edge [arrowsize=0.7];\n");
    for (size_t i = 0; i < n_entries; i++) {
        const tg_entry *e = entries[i];
        /* a view entry has no backward rule: its gradient needs no work */
        fprintf(f, "  op%zu [shape=box, style=\"rounded,%s\", fillcolor=\"#fff2cc\", label=\"",
                i, e->backward ? "filled" : "dashed");
        write_label(f, e->op, NULL);
        fprintf(f, "\"];\n");
        for (int j = 0; j < e->n_in; j++)
            fprintf(f, "  t%d -> op%zu;\n", tensor_node(&d, e->in[j]), i);
        for (int j = 0; j < e->n_out; j++) {
            int node = map_find(&d.by_tensor, e->out[j]);
            if (node < 0)
                node = new_tensor_node(&d, e->out[j], i + 1 == n_entries ? "bold" : "solid");
            fprintf(f, "  op%zu -> t%d;\n", i, node);
        }
    }
    fprintf(f, "}\n");
    free(entries);
    free(d.by_tensor.slots);
    free(d.by_storage.slots);
    free(d.tensor_of);
    if (ferror(f))
        return tg_fail(TG_ERR_IO, "tg_tape_dot: writing the graph failed");
    return TG_OK;
}

/* ---- helpers ----------------------------------------------------------------------- */

static size_t map_hash(const pointer_map *m, const void *key)
{
    /* Fibonacci hashing; the low bits of a pointer are alignment zeros */
    return (size_t)(((uint64_t)(uintptr_t)key * 0x9E3779B97F4A7C15u) >> 20) & m->mask;
}

static int map_find(const pointer_map *m, const void *key)
{
    for (size_t i = map_hash(m, key);; i = (i + 1) & m->mask) {
        if (!m->slots[i].key)
            return -1;
        if (m->slots[i].key == key)
            return m->slots[i].node;
    }
}

/* Keeps the first node stored under a key. */
static void map_put(pointer_map *m, const void *key, int node)
{
    size_t i = map_hash(m, key);
    while (m->slots[i].key && m->slots[i].key != key)
        i = (i + 1) & m->mask;
    if (!m->slots[i].key)
        m->slots[i] = (slot){key, node};
}

static bool same_view(const tg_tensor *a, const tg_tensor *b)
{
    if (a->data != b->data || a->dtype != b->dtype || a->ndim != b->ndim ||
        a->offset != b->offset)
        return false;
    for (int k = 0; k < a->ndim; k++)
        if (a->shape[k] != b->shape[k] || a->strides[k] != b->strides[k])
            return false;
    return true;
}

/* The node of an input, made on first sight. */
static int tensor_node(drawing *d, const tg_tensor *t)
{
    int node = map_find(&d->by_tensor, t);
    if (node >= 0)
        return node;
    if (t->flags & TG_TENSOR_HEAP)
        return new_tensor_node(d, t, "filled");
    /* An arena copy of a tensor already drawn (same storage, same view of
     * it) is that tensor. */
    int base = map_find(&d->by_storage, t->data);
    if (base >= 0 && same_view(d->tensor_of[base], t)) {
        map_put(&d->by_tensor, t, base);
        return base;
    }
    int source = -1;
    if (t->grad_root && t->grad_root != t)
        source = tensor_node(d, t->grad_root);
    else if (base >= 0)
        source = base;
    node = new_tensor_node(d, t, source >= 0 ? "dashed" : "solid");
    if (source >= 0)
        fprintf(d->f, "  t%d -> t%d [style=dashed];\n", source, node);
    return node;
}

static int new_tensor_node(drawing *d, const tg_tensor *t, const char *style)
{
    int node = d->n_nodes++;
    d->tensor_of[node] = t;
    map_put(&d->by_tensor, t, node);
    map_put(&d->by_storage, t->data, node);
    FILE *f = d->f;
    fprintf(f, "  t%d [shape=ellipse, style=%s", node, style);
    if (!strcmp(style, "filled"))
        fprintf(f, ", fillcolor=\"%s\"", t->grad ? "#dae8fc" : "#eeeeee");
    fprintf(f, ", label=\"");
    /* names belong to persistent tensors; views of them keep the name too */
    write_label(f, t->name, t);
    fprintf(f, "\"];\n");
    return node;
}

/* name (escaped for a DOT string), then the shape on a line of its own. */
static void write_label(FILE *f, const char *name, const tg_tensor *t)
{
    if (name) {
        for (const char *c = name; *c; c++) {
            if (*c == '"' || *c == '\\')
                fputc('\\', f);
            if ((unsigned char)*c >= ' ')
                fputc(*c, f);
        }
        if (t)
            fputs("\\n", f);
    }
    if (t) {
        char shape[128];
        fputs(t->ndim == 0 ? "scalar" : tg_shape_str(t, shape, sizeof shape), f);
    }
}
