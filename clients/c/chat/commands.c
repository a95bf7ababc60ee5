/* commands: what moonpost-chat does (connect, log in, send, ...), for the menus and the
 * /commands alike, with a clear message for every error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "term.h"

int64_t chat_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What a broker code means for one action, where the generic text would be vague. */
static const struct {
    const char *action;
    int code;
    const char *text;
} action_texts[] = {
    {"log in", 401, "wrong user name or password"},
    {"log in", 409, "already logged in on this connection"},
    {"log in", 429, "too many failed logins: wait a few minutes and try again"},
    {"register", 400,
     "user names are 1-32 letters, digits, '_', '.' or '-'; passwords need 6+ characters"},
    {"register", 409, "that user name is taken"},
    {"send", 404, "no such user"},
    {"send", 413, "the message is too long"},
    {"send", 507, "the recipient's mailbox is full: they have to read their mail first"},
    {"broadcast", 413, "the message is too long"},
    {"broadcast", 429, "too many broadcasts: slow down"},
    {"join", 403, "that room is private: a member has to invite you"},
    {"join", 507, "the room is full, or you are in too many rooms"},
    {"join", 409, "someone created that room just now: try again"},
    {"send to the room", 403, "you are not a member of that room: /join it first"},
    {"send to the room", 404, "no such room"},
    {"send to the room", 413, "the message is too long"},
    {"leave", 404, "you are not a member of that room"},
    {"history", 403, "you are not a member of that room: /join it first"},
    {"history", 404, "no such room"},
};

static const char *explain(const char *action, int code)
{
    for (size_t i = 0; i < sizeof action_texts / sizeof action_texts[0]; i++)
        if (action_texts[i].code == code && strcmp(action_texts[i].action, action) == 0)
            return action_texts[i].text;
    return mp_code_text(code);
}

void chat_report(struct chat *ch, const char *action, mp_err err)
{
    mp_client *c = ch->client;
    if (err == MP_ERR_SERVER) {
        term_print("%s failed: %s (%d: %s)", action, explain(action, mp_client_code(c)),
                   mp_client_code(c), mp_client_errmsg(c));
    } else if (err == MP_ERR_REFUSED || err == MP_ERR_RESOLVE || err == MP_ERR_TIMEOUT) {
        term_print("%s failed: %s; is the broker running at %s:%u?", action, mp_client_errmsg(c),
                   ch->host, ch->port);
    } else {
        term_print("%s failed: %s (%s)", action, mp_strerror(err), mp_client_errmsg(c));
    }
}

int chat_connect(struct chat *ch)
{
    if (mp_client_is_connected(ch->client)) return 1;
    mp_err err = mp_client_connect(ch->client, ch->host, ch->port, ch->timeout_ms);
    if (err != MP_OK) chat_report(ch, "connect", err);
    return err == MP_OK;
}

static void print_users(const mp_userlist *list)
{
    char text[4096];
    size_t len = 0;
    text[0] = '\0';
    for (size_t i = 0; i < list->n && len < sizeof text - 40; i++)
        len +=
            (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? ", " : "", list->users[i]);
    term_print("%llu user(s) online: %s%s", (unsigned long long)list->total, text,
               list->n < list->total ? ", ..." : "");
}

/* Anonymous requests may meet a connection the broker dropped (login timeout): retry once. */
static int retry_closed(struct chat *ch, mp_err err)
{
    if (err != MP_ERR_CLOSED) return 0;
    mp_client_close(ch->client);
    return chat_connect(ch);
}

int chat_login(struct chat *ch, const char *user, const char *password)
{
    if (!chat_connect(ch)) return 0;
    mp_userlist *online = NULL;
    mp_err err = mp_login(ch->client, user, password, &online);
    if (retry_closed(ch, err)) err = mp_login(ch->client, user, password, &online);
    if (err != MP_OK) {
        chat_report(ch, "log in", err);
        return 0;
    }
    ch->reconnecting = 0;
    ch->last_activity_ms = chat_now_ms();
    term_print("logged in as %s", user);
    print_users(online);
    mp_userlist_free(online);
    return 1;
}

int chat_register(struct chat *ch, const char *user, const char *password)
{
    if (!chat_connect(ch)) return 0;
    mp_err err = mp_register(ch->client, user, password, NULL);
    if (retry_closed(ch, err)) err = mp_register(ch->client, user, password, NULL);
    if (err != MP_OK) {
        chat_report(ch, "register", err);
        return 0;
    }
    term_print("registered %s", user);
    return 1;
}

int chat_logged_in(struct chat *ch)
{
    if (ch->state >= ST_CHAT && mp_client_is_connected(ch->client)) return 1;
    term_print(ch->reconnecting ? "not connected: reconnecting, try again in a moment"
                                : "log in first");
    return 0;
}

void chat_users(struct chat *ch)
{
    if (!chat_logged_in(ch)) return;
    mp_userlist *list = NULL;
    mp_err err = mp_users(ch->client, 0, &list);
    if (err != MP_OK) {
        chat_report(ch, "list users", err);
        return;
    }
    print_users(list);
    mp_userlist_free(list);
}

void chat_send(struct chat *ch, const char *to, const char *text)
{
    if (!chat_logged_in(ch)) return;
    int online = 0;
    mp_err err = mp_send(ch->client, to, text, strlen(text), MP_BODY_STR, NULL, &online);
    if (err != MP_OK) {
        chat_report(ch, "send", err);
        return;
    }
    term_print(online ? "sent to %s" : "sent to %s (offline: they get it when they log in)", to);
}

void chat_broadcast(struct chat *ch, const char *text)
{
    if (!chat_logged_in(ch)) return;
    mp_err err = mp_broadcast(ch->client, text, strlen(text), MP_BODY_STR, NULL);
    if (err != MP_OK) {
        chat_report(ch, "broadcast", err);
        return;
    }
    term_print("sent to everyone online");
}

void chat_logout(struct chat *ch)
{
    if (!chat_logged_in(ch)) return;
    mp_err err = mp_logout(ch->client);
    if (err != MP_OK) chat_report(ch, "log out", err);
    mp_client_close(ch->client);
    chat_inbox_free(ch);
    ch->room[0] = '\0';
    ch->room_seen = 0;
    term_print("logged out");
    chat_set_state(ch, ST_MAIN);
    chat_show_menu(ch);
}

static void help(void)
{
    term_print("commands: /msg USER TEXT   send USER a private message\n"
               "          /all TEXT        send everyone online a message\n"
               "          /users           who is online\n"
               "          /join ROOM       join a room (created when it does not exist) and talk there\n"
               "          /room ROOM TEXT  send TEXT to a room; /room ROOM makes it current,\n"
               "                           /room alone goes back to the menu\n"
               "          /rooms           your rooms, with their unread messages\n"
               "          /history [N]     the last N (20) messages of the current room\n"
               "          /leave [ROOM]    leave a room (the current one)\n"
               "          /inbox           the messages received so far\n"
               "          /file USER PATH  send USER a file\n"
               "          /files           the files received so far\n"
               "          /get FID [PATH]  save a received file (in PATH, or PATH itself)\n"
               "          /logout          log out\n"
               "          /quit            log out and leave moonpost-chat\n"
               "          /help            this text");
}

/* Splits "WORD REST" off LINE: the word goes to WORD, *REST points after the spaces. */
static void split(const char *line, char *word, size_t cap, const char **rest)
{
    size_t n = strcspn(line, " ");
    snprintf(word, cap, "%.*s", (int)n, line);
    line += n;
    while (*line == ' ')
        line++;
    *rest = line;
}

int chat_slash_command(struct chat *ch, const char *line)
{
    if (line[0] != '/') return 0;
    char cmd[32], to[CHAT_NAME_MAX], room[CHAT_ROOM_MAX + 2];
    const char *rest;
    split(line, cmd, sizeof cmd, &rest);
    if (strcmp(cmd, "/msg") == 0) {
        split(rest, to, sizeof to, &rest);
        if (to[0] == '\0' || rest[0] == '\0')
            term_print("usage: /msg USER TEXT");
        else
            chat_send(ch, to, rest);
    } else if (strcmp(cmd, "/all") == 0) {
        if (rest[0] == '\0')
            term_print("usage: /all TEXT");
        else
            chat_broadcast(ch, rest);
    } else if (strcmp(cmd, "/users") == 0) {
        chat_users(ch);
    } else if (strcmp(cmd, "/join") == 0 || strcmp(cmd, "/room") == 0 ||
               strcmp(cmd, "/leave") == 0 || strcmp(cmd, "/history") == 0) {
        split(rest, room, sizeof room, &rest);
        if (cmd[1] == 'j' && room[0] == '\0')
            term_print("usage: /join ROOM");
        else if (cmd[1] == 'j')
            chat_room_join(ch, room);
        else if (cmd[1] == 'r')
            chat_room_command(ch, room, rest);
        else if (cmd[1] == 'l')
            chat_room_leave(ch, room);
        else
            chat_room_history(ch, room);
    } else if (strcmp(cmd, "/rooms") == 0) {
        chat_room_list(ch);
    } else if (strcmp(cmd, "/file") == 0) {
        split(rest, to, sizeof to, &rest);
        if (to[0] == '\0' || rest[0] == '\0')
            term_print("usage: /file USER PATH");
        else
            chat_send_file(ch, to, rest);
    } else if (strcmp(cmd, "/files") == 0) {
        chat_list_files(ch);
    } else if (strcmp(cmd, "/get") == 0) {
        char fid[MP_FID_LEN + 2];
        split(rest, fid, sizeof fid, &rest);
        if (fid[0] == '\0')
            term_print("usage: /get FID [PATH]");
        else
            chat_get_file(ch, fid, rest);
    } else if (strcmp(cmd, "/inbox") == 0) {
        chat_show_inbox(ch);
    } else if (strcmp(cmd, "/logout") == 0) {
        chat_logout(ch);
    } else if (strcmp(cmd, "/quit") == 0) {
        ch->quit = 1;
    } else if (strcmp(cmd, "/help") == 0) {
        help();
    } else {
        term_print("unknown command %s: try /help", cmd);
    }
    return 1;
}

/* The broker went away. Kicked or replaced: back to the menu. Otherwise: resume later. */
void chat_connection_lost(struct chat *ch, mp_err err)
{
    (void)err;
    if (ch->state < ST_CHAT) return; /* not logged in: the next action reconnects */
    int code = mp_client_code(ch->client);
    if (code == 409 || code == 403) {
        term_print("you are logged out%s", code == 409 ? ": the account logged in elsewhere" : "");
        chat_set_state(ch, ST_MAIN);
        chat_show_menu(ch);
        return;
    }
    term_print("* connection lost (%s): reconnecting...", mp_client_errmsg(ch->client));
    ch->reconnecting = 1;
    ch->next_retry_ms = chat_now_ms();
}

static int worth_retrying(mp_client *c, mp_err err)
{
    return err == MP_ERR_REFUSED || err == MP_ERR_TIMEOUT || err == MP_ERR_CLOSED ||
           err == MP_ERR_IO || (err == MP_ERR_SERVER && mp_client_code(c) == 503);
}

void chat_tick(struct chat *ch)
{
    int64_t now = chat_now_ms();
    if (ch->reconnecting && now >= ch->next_retry_ms) {
        mp_err err = mp_client_reconnect(ch->client, 300, NULL); /* keep typing responsive */
        if (err == MP_OK) {
            ch->reconnecting = 0;
            ch->last_activity_ms = now;
            term_print("* reconnected as %s", mp_client_user(ch->client));
        } else if (worth_retrying(ch->client, err)) {
            ch->next_retry_ms = chat_now_ms() + CHAT_RETRY_MS;
        } else {
            ch->reconnecting = 0;
            chat_report(ch, "resume the session", err);
            term_print("please log in again");
            mp_client_close(ch->client);
            chat_set_state(ch, ST_MAIN);
            chat_show_menu(ch);
        }
        return;
    }
    if (ch->state >= ST_CHAT && mp_client_is_connected(ch->client) &&
        now - ch->last_activity_ms >= CHAT_KEEPALIVE_MS) {
        ch->last_activity_ms = now; /* keeps idle_timeout away; a failure shows in process */
        mp_ping(ch->client, NULL);
    }
}
