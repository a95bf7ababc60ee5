/* chat.h: the state of moonpost-chat, shared by its files. */
#ifndef MOONPOST_CHAT_H
#define MOONPOST_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "moonpost.h"

#define CHAT_NAME_MAX 64
#define CHAT_INBOX 100 /* messages kept for "show received messages" */
#define CHAT_KEEPALIVE_MS 60000
#define CHAT_RETRY_MS 2000
#define CHAT_ROOM_MAX 64 /* bytes of a room name */

enum chat_state {
    ST_MAIN,       /* not logged in: log in, register, quit */
    ST_LOGIN_USER, /* the steps of the menu dialogs */
    ST_LOGIN_PASSWORD,
    ST_REGISTER_USER,
    ST_REGISTER_PASSWORD,
    ST_CHAT, /* logged in: users, send, broadcast, received, log out */
    ST_SEND_TO,
    ST_SEND_TEXT,
    ST_BROADCAST_TEXT,
    ST_CONFIRM_OVERWRITE, /* /get: the file exists, replace it? */
};

struct inbox_entry {
    int64_t ts;
    int is_broadcast;
    int offline;
    char from[CHAT_NAME_MAX];
    char *text; /* printable, owned */
};

#define CHAT_FILES 100 /* received files kept for /files */
#define CHAT_PATH_MAX 4096

struct chat_file {
    char fid[MP_FID_LEN + 1];
    char from[CHAT_NAME_MAX];
    char name[256]; /* made safe (mp_file_safe_name) */
    uint64_t size;
};

struct chat {
    mp_client *client;
    const char *host;
    uint16_t port;
    int timeout_ms;
    enum chat_state state;
    char typed_user[CHAT_NAME_MAX]; /* the user name given in a dialog's first step */
    int quit;
    int reconnecting; /* the connection of a logged-in session was lost */
    int64_t next_retry_ms;
    int64_t last_activity_ms;
    struct inbox_entry inbox[CHAT_INBOX];
    size_t inbox_len, inbox_next;
    char room[CHAT_ROOM_MAX + 1]; /* the current room, which typed lines go to; "" for none */
    uint64_t room_seen;           /* the highest seq of it shown and not yet marked read */
    struct chat_file files[CHAT_FILES];
    size_t files_len, files_next;
    const char *download_dir;         /* where /get saves a file without a path */
    char pending_fid[MP_FID_LEN + 1]; /* the /get waiting for "overwrite?" */
    char pending_path[CHAT_PATH_MAX];
};

/* menu.c: the menus and dialogs; every typed line goes through chat_handle_line. */
void chat_show_menu(struct chat *ch);
void chat_handle_line(struct chat *ch, const char *line);
void chat_set_state(struct chat *ch, enum chat_state st);

/* commands.c: the actions, shared by the menus and the /commands. */
int chat_connect(struct chat *ch);
int chat_login(struct chat *ch, const char *user, const char *password);
int chat_register(struct chat *ch, const char *user, const char *password);
void chat_users(struct chat *ch);
void chat_send(struct chat *ch, const char *to, const char *text);
void chat_broadcast(struct chat *ch, const char *text);
void chat_logout(struct chat *ch);
int chat_slash_command(struct chat *ch, const char *line); /* 1 when LINE was a /command */
int chat_logged_in(struct chat *ch); /* 1, or 0 after saying why not */
void chat_report(struct chat *ch, const char *action, mp_err err);
void chat_connection_lost(struct chat *ch, mp_err err);
void chat_tick(struct chat *ch); /* keepalive and reconnect, from the main loop */

/* files.c: file transfer. */
void chat_send_file(struct chat *ch, const char *to, const char *path);
void chat_file_received(struct chat *ch, const mp_message *m);
void chat_list_files(struct chat *ch);
void chat_get_file(struct chat *ch, const char *fid, const char *path);
void chat_confirm_overwrite(struct chat *ch, const char *answer);
/* Where /get saves NAME (from another user): DIR/safe name without ARG, ARG/safe name when ARG
 * is a directory, else ARG itself. 0, or -1 when it does not fit in SIZE. */
int chat_download_path(const char *dir, const char *arg, const char *name, char *out, size_t size);

/* rooms.c: the room commands and the current room. */
void chat_room_join(struct chat *ch, const char *room);
void chat_room_leave(struct chat *ch, const char *room); /* "": the current room */
void chat_room_list(struct chat *ch);
void chat_room_say(struct chat *ch, const char *room, const char *text);
void chat_room_command(struct chat *ch, const char *room, const char *text); /* /room */
void chat_room_history(struct chat *ch, const char *count);
void chat_room_pushed(struct chat *ch, const mp_room_msg *m);

/* inbox.c: pushes, printed as they arrive and kept for "show received messages". */
extern const mp_callbacks chat_callbacks;
void chat_print_room_msg(const mp_room_msg *m);
void chat_show_inbox(struct chat *ch);
void chat_inbox_free(struct chat *ch);

int64_t chat_now_ms(void);

#endif
