/*
 * client.c: a C program that drives an SKF library through dlopen, the way a C caller would,
 * using only skf.h (the spec transcription). tests/skf_abi.rs compiles it with gcc and runs
 * it against softskf: proof that the fixture speaks the C ABI, not just whatever certray's
 * Rust loader expects.
 *
 * usage: client LIBRARY DEVICE APPLICATION USER_PIN CONTAINER MESSAGE_HEX E_HEX
 *
 * The smoke flow: enumerate (two calls, too-small buffer), device state, connect, device
 * info (no write past 294 bytes), applications, PIN info, containers, sign before login
 * (refused), a wrong PIN (counted), the right PIN, export the signing certificate (two
 * calls) and public key, e on the device with DigestInit(public key, ID), sign E_HEX, bad
 * input length, logout, close. Every return code is checked against the spec; the first
 * surprise prints "FAIL: …" and exits 1. Results go to stdout as "key value" lines for the
 * test (cert, pubkey, e_device, sig_r, sig_s), then "smoke OK".
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skf.h"

static void *lib;

#define LOAD(name)                                                                            \
    __typeof__(name) *p_##name = (__typeof__(name) *)dlsym(lib, #name);                      \
    if (!p_##name) {                                                                          \
        printf("FAIL: %s not exported\n", #name);                                            \
        return 1;                                                                             \
    }

#define EXPECT(what, call, want)                                                              \
    do {                                                                                      \
        ULONG rc_ = (ULONG)(call);                                                            \
        printf("step %s 0x%08X\n", what, (unsigned)rc_);                                     \
        if (rc_ != (ULONG)(want)) {                                                           \
            printf("FAIL: %s returned 0x%08X, expected 0x%08X\n", what, (unsigned)rc_,       \
                   (unsigned)(want));                                                         \
            return 1;                                                                         \
        }                                                                                     \
    } while (0)

#define REQUIRE(what, cond)                                                                   \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            printf("FAIL: %s\n", what);                                                       \
            return 1;                                                                         \
        }                                                                                     \
    } while (0)

static void print_hex(const char *key, const BYTE *b, size_t n) {
    printf("%s ", key);
    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
    printf("\n");
}

static size_t from_hex(const char *hex, BYTE *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    if (n > cap) return (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return (size_t)-1;
        out[i] = (BYTE)v;
    }
    return n;
}

/* Is `name` one of the entries of a double-NUL multi-string of `size` bytes? */
static int in_list(const char *list, ULONG size, const char *name) {
    const char *p = list;
    while (p < list + size && *p) {
        if (strcmp(p, name) == 0) return 1;
        p += strlen(p) + 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s LIBRARY DEVICE APPLICATION USER_PIN CONTAINER MESSAGE_HEX E_HEX\n",
                argv[0]);
        return 2;
    }
    const char *device = argv[2], *application = argv[3], *pin = argv[4], *container = argv[5];
    static BYTE message[4096];
    BYTE e[64];
    size_t message_len = from_hex(argv[6], message, sizeof message);
    size_t e_len = from_hex(argv[7], e, sizeof e);
    REQUIRE("MESSAGE_HEX and E_HEX (32 bytes) are hex", message_len != (size_t)-1 && e_len == 32);

    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        printf("FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
    LOAD(SKF_EnumDev);
    LOAD(SKF_GetDevState);
    LOAD(SKF_ConnectDev);
    LOAD(SKF_DisConnectDev);
    LOAD(SKF_GetDevInfo);
    LOAD(SKF_EnumApplication);
    LOAD(SKF_OpenApplication);
    LOAD(SKF_CloseApplication);
    LOAD(SKF_GetPINInfo);
    LOAD(SKF_VerifyPIN);
    LOAD(SKF_ClearSecureState);
    LOAD(SKF_EnumContainer);
    LOAD(SKF_OpenContainer);
    LOAD(SKF_CloseContainer);
    LOAD(SKF_GetContainerType);
    LOAD(SKF_ExportCertificate);
    LOAD(SKF_ExportPublicKey);
    LOAD(SKF_DigestInit);
    LOAD(SKF_Digest);
    LOAD(SKF_CloseHandle);
    LOAD(SKF_ECCSignData);

    /* Devices: size query, a buffer one byte short, then the real call. */
    ULONG size = 0;
    EXPECT("EnumDev(size)", p_SKF_EnumDev(TRUE, NULL, &size), SAR_OK);
    REQUIRE("EnumDev reports a plausible size", size >= 2 && size < 65536);
    char *list = malloc(size);
    ULONG short_size = size - 1;
    EXPECT("EnumDev(short buffer)", p_SKF_EnumDev(TRUE, list, &short_size), SAR_BUFFER_TOO_SMALL);
    REQUIRE("a too-small buffer reports the size needed", short_size == size);
    ULONG got = size;
    EXPECT("EnumDev", p_SKF_EnumDev(TRUE, list, &got), SAR_OK);
    REQUIRE("the list ends with a double NUL", got >= 2 && list[got - 1] == 0 && list[got - 2] == 0);
    REQUIRE("the device is listed", in_list(list, got, device));
    printf("devices_size %u\n", (unsigned)got);
    free(list);

    ULONG state = 99;
    EXPECT("GetDevState", p_SKF_GetDevState((LPSTR)device, &state), SAR_OK);
    REQUIRE("the device is present", state == DEV_PRESENT_STATE);
    EXPECT("GetDevState(unknown)", p_SKF_GetDevState("no-such-device", &state), SAR_OK);
    REQUIRE("an unknown device is absent", state == DEV_ABSENT_STATE);

    DEVHANDLE dev = NULL;
    EXPECT("ConnectDev(unknown)", p_SKF_ConnectDev("no-such-device", &dev), SAR_DEVICE_REMOVED);
    EXPECT("ConnectDev", p_SKF_ConnectDev((LPSTR)device, &dev), SAR_OK);

    /* DEVINFO: exactly 294 bytes written; guard bytes after it stay untouched. */
    static BYTE info_buf[sizeof(DEVINFO) + 16];
    memset(info_buf, 0xAA, sizeof info_buf);
    EXPECT("GetDevInfo", p_SKF_GetDevInfo(dev, (DEVINFO *)info_buf), SAR_OK);
    for (size_t i = sizeof(DEVINFO); i < sizeof info_buf; i++)
        REQUIRE("GetDevInfo wrote past the 294-byte DEVINFO", info_buf[i] == 0xAA);
    DEVINFO info;
    memcpy(&info, info_buf, sizeof info);
    printf("label %.32s\n", info.Label);
    printf("serial %.32s\n", info.SerialNumber);
    printf("alg_asym_cap 0x%08X\n", (unsigned)info.AlgAsymCap);
    printf("alg_hash_cap 0x%08X\n", (unsigned)info.AlgHashCap);
    REQUIRE("DEVINFO announces SM2 signing", (info.AlgAsymCap & SGD_SM2_1) == SGD_SM2_1);

    /* Applications. */
    char names[1024];
    size = sizeof names;
    EXPECT("EnumApplication", p_SKF_EnumApplication(dev, names, &size), SAR_OK);
    REQUIRE("the application is listed", in_list(names, size, application));
    HAPPLICATION app = NULL;
    EXPECT("OpenApplication(unknown)", p_SKF_OpenApplication(dev, "no-such-app", &app),
           SAR_APPLICATION_NOT_EXISTS);
    EXPECT("OpenApplication", p_SKF_OpenApplication(dev, (LPSTR)application, &app), SAR_OK);

    ULONG max = 0, remaining = 0;
    BOOL is_default = 7;
    EXPECT("GetPINInfo", p_SKF_GetPINInfo(app, USER_TYPE, &max, &remaining, &is_default), SAR_OK);
    printf("pin_max %u\npin_remaining %u\npin_default %d\n", (unsigned)max, (unsigned)remaining,
           (int)is_default);
    REQUIRE("a fresh PIN has all its tries", max > 1 && remaining == max);
    REQUIRE("the default-PIN flag is a BOOL", is_default == TRUE || is_default == FALSE);

    /* Containers. */
    size = sizeof names;
    EXPECT("EnumContainer", p_SKF_EnumContainer(app, names, &size), SAR_OK);
    REQUIRE("the container is listed", in_list(names, size, container));
    HCONTAINER con = NULL;
    EXPECT("OpenContainer", p_SKF_OpenContainer(app, (LPSTR)container, &con), SAR_OK);
    ULONG type = 0;
    EXPECT("GetContainerType", p_SKF_GetContainerType(con, &type), SAR_OK);
    REQUIRE("an SM2 container is of type ECC (2)", type == CONTAINER_TYPE_ECC);

    /* No signature without the PIN; a wrong PIN costs one try; the right one restores them. */
    ECCSIGNATUREBLOB sig;
    EXPECT("ECCSignData(not logged in)", p_SKF_ECCSignData(con, e, 32, &sig), SAR_USER_NOT_LOGGED_IN);
    ULONG retry = 0;
    EXPECT("VerifyPIN(wrong)", p_SKF_VerifyPIN(app, USER_TYPE, "000000", &retry), SAR_PIN_INCORRECT);
    REQUIRE("a wrong PIN reports one try less", retry == max - 1);
    EXPECT("GetPINInfo", p_SKF_GetPINInfo(app, USER_TYPE, &max, &remaining, &is_default), SAR_OK);
    REQUIRE("GetPINInfo shows the try used", remaining == max - 1);
    EXPECT("VerifyPIN", p_SKF_VerifyPIN(app, USER_TYPE, (LPSTR)pin, &retry), SAR_OK);
    EXPECT("GetPINInfo", p_SKF_GetPINInfo(app, USER_TYPE, &max, &remaining, &is_default), SAR_OK);
    REQUIRE("the right PIN restores the tries", remaining == max);

    /* The signing certificate: size, one byte short, then the bytes. */
    ULONG cert_len = 0;
    EXPECT("ExportCertificate(size)", p_SKF_ExportCertificate(con, TRUE, NULL, &cert_len), SAR_OK);
    REQUIRE("a certificate has a plausible size", cert_len > 100 && cert_len < 65536);
    BYTE *cert = malloc(cert_len);
    ULONG short_len = cert_len - 1;
    EXPECT("ExportCertificate(short buffer)", p_SKF_ExportCertificate(con, TRUE, cert, &short_len),
           SAR_BUFFER_TOO_SMALL);
    REQUIRE("a too-small buffer reports the length needed", short_len == cert_len);
    EXPECT("ExportCertificate", p_SKF_ExportCertificate(con, TRUE, cert, &cert_len), SAR_OK);
    REQUIRE("a DER certificate starts with SEQUENCE", cert[0] == 0x30);
    print_hex("cert", cert, cert_len);
    free(cert);
    ULONG enc_len = 0;
    EXPECT("ExportCertificate(no encryption cert)", p_SKF_ExportCertificate(con, FALSE, NULL, &enc_len),
           SAR_CERTNOTFOUNTERR);

    /* The public key, then e on the device: DigestInit with the key and the default ID. */
    ECCPUBLICKEYBLOB pub;
    ULONG pub_len = sizeof pub;
    EXPECT("ExportPublicKey", p_SKF_ExportPublicKey(con, TRUE, (BYTE *)&pub, &pub_len), SAR_OK);
    REQUIRE("an ECCPUBLICKEYBLOB is 132 bytes", pub_len == sizeof(ECCPUBLICKEYBLOB) && pub_len == 132);
    REQUIRE("an SM2 key has BitLen 256", pub.BitLen == 256);
    print_hex("pub_x", pub.XCoordinate + 32, 32);
    print_hex("pub_y", pub.YCoordinate + 32, 32);
    HANDLE hash = NULL;
    EXPECT("DigestInit(SM3, key, ID)",
           p_SKF_DigestInit(dev, SGD_SM3, &pub, (unsigned char *)"1234567812345678", 16, &hash), SAR_OK);
    BYTE e_device[32];
    ULONG e_device_len = sizeof e_device;
    EXPECT("Digest", p_SKF_Digest(hash, message, (ULONG)message_len, e_device, &e_device_len), SAR_OK);
    REQUIRE("SM3 gives 32 bytes", e_device_len == 32);
    print_hex("e_device", e_device, 32);
    EXPECT("CloseHandle", p_SKF_CloseHandle(hash), SAR_OK);

    /* Sign the host's e. */
    memset(&sig, 0xEE, sizeof sig);
    EXPECT("ECCSignData", p_SKF_ECCSignData(con, e, 32, &sig), SAR_OK);
    for (int i = 0; i < 32; i++)
        REQUIRE("r and s are right-aligned in 64-byte fields", sig.r[i] == 0 && sig.s[i] == 0);
    print_hex("sig_r", sig.r + 32, 32);
    print_hex("sig_s", sig.s + 32, 32);
    EXPECT("ECCSignData(31 bytes)", p_SKF_ECCSignData(con, e, 31, &sig), SAR_INDATALENERR);

    /* Logout: signing needs the PIN again. */
    EXPECT("ClearSecureState", p_SKF_ClearSecureState(app), SAR_OK);
    EXPECT("ECCSignData(after logout)", p_SKF_ECCSignData(con, e, 32, &sig), SAR_USER_NOT_LOGGED_IN);

    EXPECT("CloseContainer", p_SKF_CloseContainer(con), SAR_OK);
    EXPECT("CloseApplication", p_SKF_CloseApplication(app), SAR_OK);
    EXPECT("DisConnectDev", p_SKF_DisConnectDev(dev), SAR_OK);
    EXPECT("GetDevInfo(closed handle)", p_SKF_GetDevInfo(dev, &info), SAR_INVALIDHANDLEERR);
    printf("smoke OK\n");
    return 0;
}
