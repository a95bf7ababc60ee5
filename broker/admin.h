/* admin: the admin.* message types, served only on the admin socket. */
#ifndef MOONPOST_ADMIN_H
#define MOONPOST_ADMIN_H

#include "session.h"

int admin_start(void);

#endif
