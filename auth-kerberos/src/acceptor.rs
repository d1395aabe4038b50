//! The GSSAPI acceptor: credentials from a keytab, and one context per handshake.
//!
//! This is the only module in the project with `unsafe`: libgssapi's safe API can take an
//! acceptor keytab only from the process-wide `KRB5_KTNAME`, and a configured keytab needs
//! MIT's `gss_acquire_cred_from` with a credential store.

use std::ffi::CString;
use std::path::Path;
use std::ptr;

use libgssapi::credential::{Cred, CredUsage};
use libgssapi::error::{Error as GssError, MajorFlags};
use libgssapi_sys as sys;

/// Acceptor credentials for every service key in `keytab` (or the default keytab, from
/// `KRB5_KTNAME`, when `None`). Blocking: call off the async runtime. The keytab is read
/// afresh on every call, so a rotated key is used without a restart.
pub(crate) fn acquire(keytab: Option<&Path>) -> Result<Cred, GssError> {
    let Some(path) = keytab else {
        return Cred::acquire(None, None, CredUsage::Accept, None);
    };
    let no_cred = GssError {
        major: MajorFlags::GSS_S_NO_CRED,
        minor: 0,
    };
    let key = CString::new("keytab").map_err(|_| no_cred)?;
    let value = CString::new(format!("FILE:{}", path.display())).map_err(|_| no_cred)?;
    let mut element = sys::gss_key_value_element_desc {
        key: key.as_ptr(),
        value: value.as_ptr(),
    };
    let store = sys::gss_key_value_set_desc {
        count: 1,
        elements: &mut element,
    };
    let mut minor: sys::OM_uint32 = 0;
    let mut cred: sys::gss_cred_id_t = ptr::null_mut();
    #[allow(unsafe_code)]
    // SAFETY: every pointer argument points at a live local (`minor`, `store` and the
    // `element`/C strings it refers to, which outlive the call) or is null where the API
    // allows it (no desired name: any key in the keytab; no mechanism set; no outputs for
    // actual mechanisms and lifetime). On success `cred` is a fresh credential handle that
    // we own and hand to `Cred`, which releases it with gss_release_cred on drop.
    let major = unsafe {
        sys::gss_acquire_cred_from(
            &mut minor,
            ptr::null_mut(),
            sys::_GSS_C_INDEFINITE,
            ptr::null_mut(),
            sys::GSS_C_ACCEPT as sys::gss_cred_usage_t,
            &store,
            &mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if major == sys::GSS_S_COMPLETE {
        #[allow(unsafe_code)]
        // SAFETY: `cred` was just returned by a successful gss_acquire_cred_from and is
        // not owned by anything else.
        Ok(unsafe { Cred::from_c(cred) })
    } else {
        Err(GssError {
            major: MajorFlags::from_bits_retain(major),
            minor,
        })
    }
}
