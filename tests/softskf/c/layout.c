/*
 * layout.c: prints what gcc makes of skf.h, one line per struct size and field offset:
 *     DEVINFO size 294
 *     DEVINFO.AlgSymCap 198
 * tests/skf_abi.rs compares these lines with certray's `token::skf::abi` structs and with
 * softskf's own (its exported softskf_layout()). Keep the three lists in the same order.
 */
#include <stddef.h>
#include <stdio.h>

#include "skf.h"

#define SIZE(T) printf("%s size %zu\n", #T, sizeof(T))
#define FIELD(T, F) printf("%s.%s %zu\n", #T, #F, offsetof(T, F))

int main(void) {
    SIZE(VERSION);
    FIELD(VERSION, major);
    FIELD(VERSION, minor);

    SIZE(DEVINFO);
    FIELD(DEVINFO, Version);
    FIELD(DEVINFO, Manufacturer);
    FIELD(DEVINFO, Issuer);
    FIELD(DEVINFO, Label);
    FIELD(DEVINFO, SerialNumber);
    FIELD(DEVINFO, HWVersion);
    FIELD(DEVINFO, FirmwareVersion);
    FIELD(DEVINFO, AlgSymCap);
    FIELD(DEVINFO, AlgAsymCap);
    FIELD(DEVINFO, AlgHashCap);
    FIELD(DEVINFO, DevAuthAlgId);
    FIELD(DEVINFO, TotalSpace);
    FIELD(DEVINFO, FreeSpace);
    FIELD(DEVINFO, MaxECCBufferSize);
    FIELD(DEVINFO, MaxBufferSize);
    FIELD(DEVINFO, Reserved);

    SIZE(RSAPUBLICKEYBLOB);
    FIELD(RSAPUBLICKEYBLOB, AlgID);
    FIELD(RSAPUBLICKEYBLOB, BitLen);
    FIELD(RSAPUBLICKEYBLOB, Modulus);
    FIELD(RSAPUBLICKEYBLOB, PublicExponent);

    SIZE(ECCPUBLICKEYBLOB);
    FIELD(ECCPUBLICKEYBLOB, BitLen);
    FIELD(ECCPUBLICKEYBLOB, XCoordinate);
    FIELD(ECCPUBLICKEYBLOB, YCoordinate);

    SIZE(ECCSIGNATUREBLOB);
    FIELD(ECCSIGNATUREBLOB, r);
    FIELD(ECCSIGNATUREBLOB, s);

    SIZE(ECCCIPHERBLOB);
    FIELD(ECCCIPHERBLOB, XCoordinate);
    FIELD(ECCCIPHERBLOB, YCoordinate);
    FIELD(ECCCIPHERBLOB, HASH);
    FIELD(ECCCIPHERBLOB, CipherLen);
    FIELD(ECCCIPHERBLOB, Cipher);

    SIZE(BLOCKCIPHERPARAM);
    FIELD(BLOCKCIPHERPARAM, IV);
    FIELD(BLOCKCIPHERPARAM, IVLen);
    FIELD(BLOCKCIPHERPARAM, PaddingType);
    FIELD(BLOCKCIPHERPARAM, FeedBitLen);

    SIZE(FILEATTRIBUTE);
    FIELD(FILEATTRIBUTE, FileName);
    FIELD(FILEATTRIBUTE, FileSize);
    FIELD(FILEATTRIBUTE, ReadRights);
    FIELD(FILEATTRIBUTE, WriteRights);
    return 0;
}
