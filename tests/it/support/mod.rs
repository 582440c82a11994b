#![allow(dead_code)]
pub mod app;
pub mod external;
pub mod postgres;
pub mod process;
pub mod receiver;
pub mod smtp;
pub mod ui;
pub mod webdriver;
