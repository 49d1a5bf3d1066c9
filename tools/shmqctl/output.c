/* SPDX-License-Identifier: MIT */
/*
 * shmqctl output: a streaming JSON writer, aligned text tables, and the
 * small formatters both use.
 *
 * The JSON writer tracks only "is this the first item at this level", which
 * is all that commas need.  Strings are escaped to plain ASCII: control
 * characters and bytes >= 0x80 become \u00XX, so the output is valid UTF-8
 * JSON even when a path holds bytes that are not.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libsmartcols/libsmartcols.h>

#include "shm/kind.h"
#include "tools/shmqctl/shmqctl.h"

/* --- JSON --- */

void json_init(struct json *j, FILE *f, bool compact)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->compact = compact;
	j->first[0] = true;
}

void json_finish(struct json *j)
{
	fputc('\n', j->f);
}

static void indent(struct json *j)
{
	if (j->compact)
		return;
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

/* Before any value or key: a comma and a line break unless it follows a key. */
static void item(struct json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = false;
	if (j->depth > 0)
		indent(j);
}

static void open_level(struct json *j, char c)
{
	item(j);
	fputc(c, j->f);
	if (j->depth + 1 < JSON_DEPTH_MAX)
		j->depth++;
	j->first[j->depth] = true;
}

static void close_level(struct json *j, char c)
{
	bool empty = j->first[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (!empty)
		indent(j);
	fputc(c, j->f);
}

void json_begin_object(struct json *j)
{
	open_level(j, '{');
}

void json_end_object(struct json *j)
{
	close_level(j, '}');
}

void json_begin_array(struct json *j)
{
	open_level(j, '[');
}

void json_end_array(struct json *j)
{
	close_level(j, ']');
}

/*
 * The length of the well-formed UTF-8 sequence at @p (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), or 0.
 */
static size_t utf8_len(const unsigned char *p)
{
	uint32_t c;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, c = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, c = p[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0; /* the NUL ends it here too */
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return n;
}

/*
 * A JSON string: UTF-8 text passes as it is (user names, paths); control
 * characters are escaped, and a byte that is not part of well-formed UTF-8
 * becomes U+FFFD, so the output is always valid JSON in valid UTF-8.
 */
static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = utf8_len(p);

		if (n > 1) {
			fwrite(p, 1, n, f);
			p += n;
			continue;
		}
		if (n == 0)
			fputs("\\ufffd", f);
		else if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
		p++;
	}
	fputc('"', f);
}

void json_key(struct json *j, const char *key)
{
	item(j);
	put_string(j->f, key);
	fputs(j->compact ? ":" : ": ", j->f);
	j->after_key = true;
}

void json_string(struct json *j, const char *s)
{
	item(j);
	if (s)
		put_string(j->f, s);
	else
		fputs("null", j->f);
}

void json_u64(struct json *j, uint64_t v)
{
	item(j);
	fprintf(j->f, "%" PRIu64, v);
}

void json_i64(struct json *j, int64_t v)
{
	item(j);
	fprintf(j->f, "%" PRId64, v);
}

void json_double(struct json *j, double v)
{
	item(j);
	/* JSON has no NaN or infinity. */
	if (isfinite(v))
		fprintf(j->f, "%.3f", v);
	else
		fputs("null", j->f);
}

void json_bool(struct json *j, bool v)
{
	item(j);
	fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j)
{
	item(j);
	fputs("null", j->f);
}

void json_kv_string(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_string(j, s);
}

void json_kv_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	json_u64(j, v);
}

void json_kv_i64(struct json *j, const char *key, int64_t v)
{
	json_key(j, key);
	json_i64(j, v);
}

void json_kv_double(struct json *j, const char *key, double v)
{
	json_key(j, key);
	json_double(j, v);
}

void json_kv_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	json_bool(j, v);
}

void json_kv_null(struct json *j, const char *key)
{
	json_key(j, key);
	json_null(j);
}

/* --- Tables --- */

void table_init(struct table *t, unsigned int n_cols, const char *const *headers,
		unsigned int right)
{
	memset(t, 0, sizeof(*t));
	t->n_cols = n_cols < 32 ? n_cols : 32; /* print_row()'s line holds 32 */
	t->headers = headers;
	t->right = right;
}

int table_add(struct table *t, ...)
{
	va_list ap;

	if (t->n_rows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		void *p = realloc(t->cells, cap * t->n_cols * sizeof(t->cells[0]));

		if (!p)
			return -ENOMEM;
		t->cells = p;
		t->cap = cap;
	}
	va_start(ap, t);
	for (unsigned int i = 0; i < t->n_cols; i++) {
		const char *s = va_arg(ap, const char *);

		snprintf(t->cells[t->n_rows * t->n_cols + i], TABLE_CELL_MAX, "%s", s ? s : "-");
	}
	va_end(ap);
	t->n_rows++;
	return 0;
}

/* --- Printing, through libsmartcols (lsipc's own table code) --- */

static struct table_style style = {.legend = true};

void table_style_set(const struct table_style *s)
{
	style = *s;
}

/* The columns -o asked for, as indices into @t, in its order; exits 2 for an unknown one. */
static unsigned int selected(const struct table *t, unsigned int *idx)
{
	char list[512], *save = NULL;
	unsigned int n = 0;

	if (!style.columns) {
		for (unsigned int i = 0; i < t->n_cols; i++)
			idx[n++] = i;
		return n;
	}
	snprintf(list, sizeof(list), "%s", style.columns);
	for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		unsigned int i = 0;

		while (i < t->n_cols && strcasecmp(name, t->headers[i]))
			i++;
		if (i == t->n_cols || n == 32) {
			fprintf(stderr, "shmqctl: -o: %s '%s'; this table's columns:",
				i == t->n_cols ? "no column" : "too many columns at", name);
			for (unsigned int k = 0; k < t->n_cols; k++)
				fprintf(stderr, "%s%s", k ? "," : " ", t->headers[k]);
			fputc('\n', stderr);
			exit(EXIT_USAGE);
		}
		idx[n++] = i;
	}
	return n;
}

void table_print(const struct table *t, FILE *f, bool legend)
{
	struct libscols_table *tb = scols_new_table();
	unsigned int idx[32], n;

	if (!tb) {
		fprintf(stderr, "shmqctl: out of memory for a table\n");
		return;
	}
	n = selected(t, idx);
	scols_table_enable_raw(tb, style.raw);
	scols_table_enable_export(tb, style.export);
	scols_table_enable_shellvar(tb, style.export); /* SEND/S as SEND_S: a shell name */
	scols_table_enable_noheadings(tb, !legend || !style.legend);
	if (!style.raw && !style.export)
		scols_table_set_column_separator(tb,
						 "  "); /* as before libsmartcols: room to read */
	if (t->max_cols) {				/* top on a terminal: cut at its width */
		scols_table_set_termforce(tb, SCOLS_TERMFORCE_ALWAYS);
		scols_table_set_termwidth(tb, t->max_cols);
	}
	for (unsigned int k = 0; k < n; k++) {
		unsigned int i = idx[k];
		/* numbers right-aligned; text may be cut to fit a terminal */
		int flags = (t->right & (1u << i)) ? SCOLS_FL_RIGHT : SCOLS_FL_TRUNC;

		if (!scols_table_new_column(tb, t->headers[i], 0, flags))
			goto out;
	}
	for (size_t r = 0; r < t->n_rows; r++) {
		struct libscols_line *ln = scols_table_new_line(tb, NULL);

		if (!ln)
			goto out;
		for (unsigned int k = 0; k < n; k++)
			if (scols_line_set_data(ln, k, t->cells[r * t->n_cols + idx[k]]) < 0)
				goto out;
	}
	if (!t->max_cols) {
		scols_table_set_stream(tb, f);
		scols_print_table(tb);
	} else {
		/*
		 * libsmartcols cuts text columns to fit, but never numbers: what
		 * still runs past the width is cut here, so a refresh never wraps.
		 */
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);

		if (m) {
			scols_table_set_stream(tb, m);
			scols_print_table(tb);
			fclose(m);
			for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
				size_t w;

				nl = strchr(line, '\n');
				w = nl ? (size_t)(nl - line) : strlen(line);
				fprintf(f, "%.*s\n", (int)(w < t->max_cols ? w : t->max_cols),
					line);
			}
			free(buf);
		}
	}
out:
	scols_unref_table(tb);
}

void table_fini(struct table *t)
{
	free(t->cells);
	t->cells = NULL;
	t->n_rows = t->cap = 0;
}

/* --- Formatting --- */

void fmt_count(char *buf, size_t size, double v)
{
	static const char unit[] = "KMGTP";
	int i = -1;

	if (v < 10000) {
		snprintf(buf, size, "%.0f", v);
		return;
	}
	while (v >= 1000 && i < 4) {
		v /= 1000;
		i++;
	}
	snprintf(buf, size, v < 100 ? "%.1f%c" : "%.0f%c", v, unit[i]);
}

void fmt_bytes(char *buf, size_t size, uint64_t bytes)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int i = 0;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, size, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, size, "%.1f %s", v, unit[i]);
}

void fmt_duration(char *buf, size_t size, uint64_t ns)
{
	uint64_t s = ns / 1000000000;
	uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;

	if (d)
		snprintf(buf, size, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "m", d, h, m);
	else if (h)
		snprintf(buf, size, "%" PRIu64 "h %" PRIu64 "m %" PRIu64 "s", h, m, s % 60);
	else if (m)
		snprintf(buf, size, "%" PRIu64 "m %" PRIu64 "s", m, s % 60);
	else
		snprintf(buf, size, "%.1fs", (double)ns / 1e9);
}

bool user_name(uint32_t uid, char *buf, size_t size)
{
	char tmp[4096];
	struct passwd pw, *res = NULL;

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) != 0 || !res)
		return false;
	snprintf(buf, size, "%s", res->pw_name);
	return true;
}

bool group_name(uint32_t gid, char *buf, size_t size)
{
	char tmp[4096];
	struct group gr, *res = NULL;

	if (getgrgid_r(gid, &gr, tmp, sizeof(tmp), &res) != 0 || !res)
		return false;
	snprintf(buf, size, "%s", res->gr_name);
	return true;
}

void fmt_user(char *buf, size_t size, uint32_t uid)
{
	if (!user_name(uid, buf, size))
		snprintf(buf, size, "%" PRIu32, uid);
}

void fmt_group(char *buf, size_t size, uint32_t gid)
{
	if (!group_name(gid, buf, size))
		snprintf(buf, size, "%" PRIu32, gid);
}

const char *queue_mode_name(uint32_t mode)
{
	static const char *const names[] = {"mpmc", "spsc", "mpsc", "spmc"};

	return mode < 4 ? names[mode] : "?";
}

const char *kind_name(uint32_t kind)
{
	const struct shmq_kind *k = shmq__kind(kind);

	return k ? k->name : "?";
}

void fmt_role(char *buf, size_t size, uint32_t role)
{
	snprintf(buf, size, "%s",
		 role == (SHMQ_ATTACH_SEND | SHMQ_ATTACH_RECV) ? "send+recv"
		 : role == SHMQ_ATTACH_SEND		       ? "send"
		 : role == SHMQ_ATTACH_RECV		       ? "recv"
		 : role == SHMQ_ATTACH_SEM		       ? "sem"
		 : role == SHMQ_ATTACH_VIEW		       ? "view"
							       : "?");
}

uint64_t mono_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}
