/* sh_parse.c: tokenizer and recursive-descent parser for the `sh -c` subset:
 *   lists with ; & && || and newlines, ( subshells ), { groups; },
 *   for NAME in WORDS; do LIST; done, if LIST; then LIST; [else LIST;] fi,
 *   redirections N>FILE N>>FILE N>&M N<&- <FILE, quoting '...' "..." \x.
 * Words stay raw (quotes kept) and are expanded when the command runs.
 * Everything comes from the host: every bound is checked, errors are text. */
#include "sh.h"

enum { T_WORD, T_SEMI, T_AMP, T_AND, T_OR, T_LPAR, T_RPAR, T_NL, T_PIPE, T_REDIR, T_EOF };

#define TOK_MAX 256

struct tok {
    uint8_t type, fd, op;
    char *text;
};

struct parser {
    struct proc *p;
    struct tok *t;
    int n, i;
    char *err;
    size_t errcap;
    int failed;
    int depth;
};

static void fail(struct parser *ps, const char *msg, const char *near)
{
    if (ps->failed) return;
    ps->failed = 1;
    if (near) ag_fmt(ps->err, ps->errcap, "%s near '%.*s'", msg, 32, near);
    else ag_fmt(ps->err, ps->errcap, "%s", msg);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static int is_meta(char c) { return c == ';' || c == '&' || c == '|' || c == '(' || c == ')' || c == '<' || c == '>' || c == '\n'; }

static int tokenize(struct parser *ps, const char *s)
{
    int n = 0;
    ps->t = arena_alloc(ps->p, sizeof(struct tok) * TOK_MAX);
    if (!ps->t) {
        fail(ps, "script too large", NULL);
        return -1;
    }
    while (*s) {
        if (n >= TOK_MAX - 1) {
            fail(ps, "script has too many tokens", NULL);
            return -1;
        }
        struct tok *t = &ps->t[n];
        t->text = NULL;
        t->fd = 0;
        t->op = 0;
        if (is_space(*s)) { s++; continue; }
        if (*s == '\\' && s[1] == '\n') { s += 2; continue; }
        if (*s == '#') {  /* comment at the start of a word */
            while (*s && *s != '\n') s++;
            continue;
        }
        /* redirection: [digit]> >> < >& <& */
        const char *r = s;
        int fd = -1;
        if (*r >= '0' && *r <= '2' && (r[1] == '>' || r[1] == '<')) fd = *r++ - '0';
        if (*r == '>' || *r == '<') {
            t->type = T_REDIR;
            if (*r == '>') {
                t->fd = (uint8_t)(fd < 0 ? 1 : fd);
                if (r[1] == '>') t->op = 'a', r += 2;
                else if (r[1] == '&') t->op = '&', r += 2;
                else t->op = '>', r += 1;
            } else {
                t->fd = (uint8_t)(fd < 0 ? 0 : fd);
                if (r[1] == '&') t->op = '&', r += 2;
                else t->op = '<', r += 1;
            }
            s = r;
            n++;
            continue;
        }
        switch (*s) {
        case ';': t->type = T_SEMI; s++; n++; continue;
        case '\n': t->type = T_NL; s++; n++; continue;
        case '(': t->type = T_LPAR; s++; n++; continue;
        case ')': t->type = T_RPAR; s++; n++; continue;
        case '&': t->type = s[1] == '&' ? T_AND : T_AMP; s += s[1] == '&' ? 2 : 1; n++; continue;
        case '|': t->type = s[1] == '|' ? T_OR : T_PIPE; s += s[1] == '|' ? 2 : 1; n++; continue;
        }
        /* a word: up to an unquoted blank or metacharacter */
        const char *w = s;
        while (*s && !is_space(*s) && !is_meta(*s)) {
            if (*s == '\\') {
                s++;
                if (*s) s++;
            } else if (*s == '\'') {
                s++;
                while (*s && *s != '\'') s++;
                if (!*s) { fail(ps, "unterminated '", w); return -1; }
                s++;
            } else if (*s == '"') {
                s++;
                while (*s && *s != '"') {
                    if (*s == '\\' && s[1]) s++;
                    s++;
                }
                if (!*s) { fail(ps, "unterminated \"", w); return -1; }
                s++;
            } else if (*s == '`') {
                fail(ps, "command substitution is not supported", w);
                return -1;
            } else if (*s == '$' && s[1] == '(') {
                fail(ps, "command substitution is not supported", w);
                return -1;
            } else {
                s++;
            }
        }
        t->type = T_WORD;
        t->text = arena_strndup(ps->p, w, (size_t)(s - w));
        if (!t->text) { fail(ps, "script too large", NULL); return -1; }
        n++;
    }
    ps->t[n].type = T_EOF;
    ps->t[n].text = NULL;
    ps->n = n + 1;
    return 0;
}

static struct tok *peek(struct parser *ps) { return &ps->t[ps->i]; }

static int peek_word(struct parser *ps, const char *kw)
{
    struct tok *t = peek(ps);
    return t->type == T_WORD && ag_streq(t->text, kw);
}

static void skip_newlines(struct parser *ps)
{
    while (peek(ps)->type == T_NL) ps->i++;
}

static struct node *new_node(struct parser *ps, int kind)
{
    struct node *n = arena_alloc(ps->p, sizeof *n);
    if (!n) {
        fail(ps, "script too large", NULL);
        return NULL;
    }
    ag_memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    return n;
}

static struct node *parse_list(struct parser *ps);

/* words ending a list: the caller's closing keyword */
static int at_list_end(struct parser *ps)
{
    struct tok *t = peek(ps);
    if (t->type == T_EOF || t->type == T_RPAR) return 1;
    if (t->type != T_WORD) return 0;
    return ag_streq(t->text, "}") || ag_streq(t->text, "done") || ag_streq(t->text, "do") ||
           ag_streq(t->text, "then") || ag_streq(t->text, "else") || ag_streq(t->text, "fi") ||
           ag_streq(t->text, "elif");
}

static int expect_word(struct parser *ps, const char *kw)
{
    skip_newlines(ps);
    if (!peek_word(ps, kw)) {
        char msg[48];
        ag_fmt(msg, sizeof msg, "expected '%s'", kw);
        fail(ps, msg, peek(ps)->text ? peek(ps)->text : "end of script");
        return -1;
    }
    ps->i++;
    return 0;
}

static int parse_redirs(struct parser *ps, struct node *n)
{
    struct redir tmp[8];
    int k = 0;
    while (peek(ps)->type == T_REDIR) {
        struct tok *t = &ps->t[ps->i++];
        if (peek(ps)->type != T_WORD) {
            fail(ps, "redirection without a target", NULL);
            return -1;
        }
        if (k == 8) {
            fail(ps, "too many redirections", NULL);
            return -1;
        }
        tmp[k].fd = t->fd;
        tmp[k].op = t->op;
        tmp[k].word = ps->t[ps->i++].text;
        k++;
    }
    if (!k) return 0;
    struct redir *r = arena_alloc(ps->p, sizeof(struct redir) * (size_t)(k + n->nredir));
    if (!r) {
        fail(ps, "script too large", NULL);
        return -1;
    }
    for (int i = 0; i < n->nredir; i++) r[i] = n->redirs[i];
    for (int i = 0; i < k; i++) r[n->nredir + i] = tmp[i];
    n->redirs = r;
    n->nredir = (uint16_t)(n->nredir + k);
    return 0;
}

static struct node *parse_command(struct parser *ps)
{
    struct node *n = NULL;
    if (++ps->depth > 16) {
        fail(ps, "nesting too deep", NULL);
        return NULL;
    }
    struct tok *t = peek(ps);
    if (t->type == T_LPAR) {
        ps->i++;
        n = new_node(ps, N_SUB);
        if (n) n->child = parse_list(ps);
        if (!ps->failed && peek(ps)->type != T_RPAR) fail(ps, "expected ')'", peek(ps)->text);
        ps->i++;
    } else if (peek_word(ps, "{")) {
        ps->i++;
        n = new_node(ps, N_GROUP);
        if (n) n->child = parse_list(ps);
        expect_word(ps, "}");
    } else if (peek_word(ps, "for")) {
        ps->i++;
        n = new_node(ps, N_FOR);
        if (!n) goto out;
        if (peek(ps)->type != T_WORD) {
            fail(ps, "for needs a variable name", NULL);
            goto out;
        }
        n->var = ps->t[ps->i++].text;
        char *words[ARGS_MAX];
        int k = 0;
        if (peek_word(ps, "in")) {
            ps->i++;
            while (peek(ps)->type == T_WORD) {
                if (k == ARGS_MAX) {
                    fail(ps, "too many words in for", NULL);
                    goto out;
                }
                words[k++] = ps->t[ps->i++].text;
            }
        }
        if (peek(ps)->type == T_SEMI) ps->i++;
        n->words = arena_alloc(ps->p, sizeof(char *) * (size_t)(k ? k : 1));
        if (!n->words) {
            fail(ps, "script too large", NULL);
            goto out;
        }
        for (int i = 0; i < k; i++) n->words[i] = words[i];
        n->nwords = (uint16_t)k;
        if (expect_word(ps, "do")) goto out;
        n->child = parse_list(ps);
        expect_word(ps, "done");
    } else if (peek_word(ps, "if")) {
        ps->i++;
        n = new_node(ps, N_IF);
        if (!n) goto out;
        n->child = parse_list(ps);
        if (expect_word(ps, "then")) goto out;
        n->then_part = parse_list(ps);
        skip_newlines(ps);
        if (peek_word(ps, "else")) {
            ps->i++;
            n->else_part = parse_list(ps);
        } else if (peek_word(ps, "elif")) {
            fail(ps, "elif is not supported", NULL);
            goto out;
        }
        expect_word(ps, "fi");
    } else {
        /* simple command: words and redirections in any order */
        char *words[ARGS_MAX];
        int k = 0;
        n = new_node(ps, N_SIMPLE);
        if (!n) goto out;
        for (;;) {
            t = peek(ps);
            if (t->type == T_REDIR) {
                if (parse_redirs(ps, n)) goto out;
                continue;
            }
            if (t->type != T_WORD) break;
            if (k == 0 && at_list_end(ps)) break;
            if (k == ARGS_MAX) {
                fail(ps, "too many words in a command", NULL);
                goto out;
            }
            words[k++] = t->text;
            ps->i++;
        }
        if (!k && !n->nredir) {
            fail(ps, "syntax error", peek(ps)->text ? peek(ps)->text : "end of script");
            goto out;
        }
        n->words = arena_alloc(ps->p, sizeof(char *) * (size_t)(k ? k : 1));
        if (!n->words) {
            fail(ps, "script too large", NULL);
            goto out;
        }
        for (int i = 0; i < k; i++) n->words[i] = words[i];
        n->nwords = (uint16_t)k;
        goto out;
    }
    if (n && !ps->failed) parse_redirs(ps, n);
out:
    ps->depth--;
    return ps->failed ? NULL : n;
}

/* list := and_or ((; | & | newline) and_or)* ; and_or := command ((&& | ||) newline* command)* */
static struct node *parse_list(struct parser *ps)
{
    struct node *list = new_node(ps, N_LIST), *last = NULL;
    if (!list) return NULL;
    skip_newlines(ps);
    while (!ps->failed && !at_list_end(ps)) {
        struct node *c = parse_command(ps);
        if (!c) return NULL;
        if (last) last->next = c;
        else list->child = c;
        last = c;
        struct tok *t = peek(ps);
        if (t->type == T_PIPE) {
            fail(ps, "pipelines are not supported", NULL);
            return NULL;
        }
        if (t->type == T_AND || t->type == T_OR) {
            c->conn = t->type == T_AND ? C_AND : C_OR;
            ps->i++;
            skip_newlines(ps);
            if (at_list_end(ps)) {
                fail(ps, "syntax error: command expected after && or ||", NULL);
                return NULL;
            }
            continue;
        }
        if (t->type == T_AMP) c->bg = 1;
        if (t->type == T_AMP || t->type == T_SEMI || t->type == T_NL) {
            ps->i++;
            skip_newlines(ps);
            continue;
        }
        if (!at_list_end(ps)) {
            fail(ps, "syntax error", t->text ? t->text : "operator");
            return NULL;
        }
    }
    return ps->failed ? NULL : list;
}

struct node *sh_parse(struct proc *p, const char *src, char *err, size_t errcap)
{
    struct parser ps = {.p = p, .err = err, .errcap = errcap};
    if (tokenize(&ps, src)) return NULL;
    struct node *n = parse_list(&ps);
    if (!ps.failed && peek(&ps)->type != T_EOF) fail(&ps, "syntax error", peek(&ps)->text ? peek(&ps)->text : ")");
    return ps.failed ? NULL : n;
}
